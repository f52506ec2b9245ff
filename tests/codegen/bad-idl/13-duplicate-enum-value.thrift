enum Color {
  RED = 1,
  CRIMSON = 1,
  BLUE = 2
}
struct Paint {
  1: Color color = Color.CRIMSON
}
// expect: 3:13: warning: enum values Color.CRIMSON and Color.RED (at 2:9) are both 1; Debug prints RED
