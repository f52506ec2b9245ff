struct Point {
  1: i32 x,
  2: i32 y,
  1: i32 z
}
// expect: 4:3: error: field id 1 is used twice in struct Point (first at 2:3)
