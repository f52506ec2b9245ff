// The service Weft's interop, hostile-input and shutdown tests run against.
// It carries every kind of value a real service does: strings, a large
// binary, integers, a double, containers, nested structs and an exception.
namespace py weft_echo
namespace rs weft_echo

exception EchoError {
  1: i32 code,
  2: string message,
}

struct Inner {
  1: string name,
  2: list<i32> values,
}

struct Payload {
  1: string text,
  2: binary blob,
  3: i64 count,
  4: double ratio,
  5: list<string> tags,
  6: map<string, i64> scores,
  7: Inner inner,
  8: optional list<Inner> children,
  9: set<string> labels,
  10: bool flag,
}

service Echo {
  // Returns the payload unchanged.
  Payload echo(1: Payload payload),
  // Throws EchoError{code, message}, or an undeclared error when code < 0.
  Payload fail(1: i32 code, 2: string message) throws (1: EchoError err),
  i64 add(1: i64 a, 2: i64 b),
  // Returns the metainfo value the call carried under `key` (persistent or
  // transient), and sends back a backward value `echo-<key>`.
  string metainfo(1: string key),
  void ping(),
  oneway void notify(1: string text),
  // Sleeps `millis`, then returns the payload.
  Payload slow(1: Payload payload, 2: i32 millis),
}
