exception Oops {
  1: string why
}
service Greeter {
  void hello() throws (1: optional Oops oops)
}
// expect: 5:27: warning: optional keyword is ignored in argument lists (oops in the throws of Greeter.hello)
