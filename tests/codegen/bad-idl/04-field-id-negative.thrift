struct Point {
  1: i32 x,
  -2: i32 y
}
// expect: 3:3: error: field y in struct Point has id -2; field ids must be positive (1 to 32767)
