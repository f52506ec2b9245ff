enum Color { RED = 1, BLUE = 2 }
const Color FAVOURITE = Color.GREEN
// expect: 2:25: error: type error: const FAVOURITE is declared as enum Color, which has no value GREEN
