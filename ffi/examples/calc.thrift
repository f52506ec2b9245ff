// The service of the ffi examples (hello.c encodes its messages by hand).
namespace py calc

exception DivByZero {
  1: string message
}

service Calc {
  i64 add(1: i64 a, 2: i64 b)
  i64 div(1: i64 a, 2: i64 b) throws (1: DivByZero err)
}
