enum Big {
  A = 2147483647,
  B
}
// expect: 3:3: error: enum value Big.B = 2147483648 does not fit in an i32
