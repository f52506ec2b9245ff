struct Config {
  1: i32 port = "http",
  2: string host = "localhost"
}
// expect: 2:17: error: type error: the default of field port in struct Config is declared as i32 but its value is the string "http"
