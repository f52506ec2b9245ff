const i32 PORT = DEFAULT_PORT
// expect: 1:18: error: unknown constant DEFAULT_PORT in const PORT
