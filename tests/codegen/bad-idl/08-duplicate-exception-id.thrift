exception Oops {}
exception Worse {}
service Calc {
  i32 div(1: i32 a, 2: i32 b) throws (1: Oops oops, 1: Worse worse)
}
// expect: 4:53: error: field id 1 is used twice in the throws of Calc.div (first at 4:39)
