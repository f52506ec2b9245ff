const i32 PORT = "9090"
// expect: 1:18: error: type error: const PORT is declared as i32 but its value is the string "9090"
