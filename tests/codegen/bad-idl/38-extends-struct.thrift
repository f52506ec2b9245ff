struct Base {}
service Derived extends Base {
  void run()
}
// expect: 2:25: error: service Derived extends Base, which is a struct, not a service
