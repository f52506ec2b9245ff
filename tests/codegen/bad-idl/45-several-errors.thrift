struct Point {
  1: i32 x,
  1: i32 y
}
service Calc {
  oneway void go() throws (1: Point p)
}
// expect: 3:3: error: field id 1 is used twice in struct Point (first at 2:3)
// expect: 6:20: error: oneway method Calc.go cannot throw exceptions
// expect: 6:31: error: Calc.go throws Point, which is a struct, not an exception
