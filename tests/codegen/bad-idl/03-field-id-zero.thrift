struct Point {
  0: i32 x
}
// expect: 2:3: error: field x in struct Point has id 0; field ids must be positive (1 to 32767)
