enum Code { A, B }
service Svc {
  void run() throws (1: Code e)
}
// expect: 3:25: error: Svc.run throws Code, which is an enum, not an exception
