service Calc {
  i32 add(1: i32 a, 2: i32 b),
  i64 add(1: i64 a, 2: i64 b)
}
// expect: 3:7: error: method add is defined twice in service Calc (first at 2:7)
