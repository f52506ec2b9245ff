enum Color {
  RED = 1,
  RED = 2
}
// expect: 3:3: error: enum value Color.RED is defined twice (first at 2:3)
