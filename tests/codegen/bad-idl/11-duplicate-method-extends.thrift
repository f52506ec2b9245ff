service Base {
  void ping()
}
service Derived extends Base {
  void ping()
}
// expect: 5:8: error: method ping of service Derived is already defined in service Base, which it extends (at 2:8)
