struct Point {}
const i32 N = 1
struct Uses {
  1: N n
}
// expect: 4:6: error: N in field n of struct Uses is a const, not a type
