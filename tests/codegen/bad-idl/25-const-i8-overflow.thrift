const i8 SMALL = 300
// expect: 1:18: error: const SMALL is declared as i8, which cannot hold 300
