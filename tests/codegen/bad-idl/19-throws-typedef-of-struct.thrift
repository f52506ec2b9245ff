struct Plain {}
typedef Plain Alias
service Svc {
  void run() throws (1: Alias e)
}
// expect: 4:25: error: Svc.run throws Alias, which is a struct, not an exception
