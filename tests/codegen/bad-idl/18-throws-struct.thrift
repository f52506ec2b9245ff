struct NotAnError {
  1: string why
}
service Svc {
  void run() throws (1: NotAnError e)
}
// expect: 5:25: error: Svc.run throws NotAnError, which is a struct, not an exception
