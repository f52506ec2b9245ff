// The structs of Apache Thrift's test/ThriftTest.thrift that the codec
// benchmarks encode and decode (Xtruct and Insanity, as there), and a struct
// with one binary field for the 1 MiB case. Compiled by pilota-build at build
// time and by Apache's compiler into src/apache/thrift_test.rs:
//
//   thrift --gen rs -out src/apache idl/thrift_test.thrift
namespace rs thrift_test

enum Numberz {
  ONE = 1,
  TWO,
  THREE,
  FIVE = 5,
  SIX,
  EIGHT = 8
}

typedef i64 UserId

struct Xtruct {
  1: string string_thing,
  4: i8 byte_thing,
  9: i32 i32_thing,
  11: i64 i64_thing
}

struct Insanity {
  1: map<Numberz, UserId> userMap,
  2: list<Xtruct> xtructs
}

struct Blob {
  1: binary data
}
