const bool VERBOSE = 2
// expect: 1:22: error: type error: const VERBOSE is declared as bool but its value is the integer 2
