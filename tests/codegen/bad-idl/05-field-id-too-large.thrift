struct Point {
  40000: i32 x
}
// expect: 2:3: error: field id does not fit in an i16
