struct Calc {}
service Calc {
  void run()
}
// expect: 2:9: error: Calc is defined twice: here as a service and first as a struct (at 1:8)
