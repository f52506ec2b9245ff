service Derived extends Missing {
  void run()
}
// expect: 1:25: error: service Derived extends Missing, which is not defined
