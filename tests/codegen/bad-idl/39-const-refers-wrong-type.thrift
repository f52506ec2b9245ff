const i32 PORT = 9090
const string HOST = PORT
// expect: 2:21: error: type error: const HOST is declared as string but its value, const PORT, is i32
