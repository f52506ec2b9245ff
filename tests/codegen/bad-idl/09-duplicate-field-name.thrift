struct Point {
  1: i32 x,
  2: double x
}
// expect: 3:13: error: field name x is used twice in struct Point (first at 2:10)
