const string HOST = 8080
// expect: 1:21: error: type error: const HOST is declared as string but its value is the integer 8080
