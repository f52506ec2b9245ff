struct Config {
  1: i64 timeout_ms = 1.5
}
// expect: 2:23: error: type error: the default of field timeout_ms in struct Config is declared as i64 but its value is a double
