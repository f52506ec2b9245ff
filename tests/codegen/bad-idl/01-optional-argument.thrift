service Greeter {
  string hello(1: optional string name, 2: i32 times)
}
// expect: 2:19: warning: optional keyword is ignored in argument lists (name in the arguments of Greeter.hello)
