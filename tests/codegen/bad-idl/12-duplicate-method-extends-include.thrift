include "inc/base.thrift"
service Derived extends base.Base {
  i32 ping()
}
// expect: 3:7: error: method ping of service Derived is already defined in service Base, which it extends (at {dir}/inc/base.thrift:2:8)
