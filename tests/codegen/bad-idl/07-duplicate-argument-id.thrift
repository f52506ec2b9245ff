service Calc {
  i32 add(1: i32 a, 1: i32 b)
}
// expect: 2:21: error: field id 1 is used twice in the arguments of Calc.add (first at 2:11)
