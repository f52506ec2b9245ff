// Rust keywords as IDL names: methods, arguments, fields, enum values,
// exceptions. The generated Rust uses raw identifiers (`r#type`) or a
// trailing `_` where Rust has no raw form (`self`, `Self`, `crate`,
// `super`); every wire name stays as written here.
namespace rs keywords

enum Kind {
  type = 1,
  match = 2,
  Self = 3,
  self = 4,
  async = 5,
  crate = 6,
  super = 7,
}

struct Item {
  1: string type,
  2: i32 match,
  3: optional string self,
  4: optional Kind async,
  5: optional string crate,
  6: optional string super,
  7: optional string Self,
  8: optional i64 loop,
}

exception Fail {
  1: string type,
}

service Keywords {
  Item match(1: Item self, 2: string type, 3: i32 crate) throws (1: Fail super),
  string type(1: string async, 2: string super, 3: string Self),
  oneway void self(1: string loop),
  void async(),
  i32 crate(1: Kind move),
  string super(),
  string Self(),
  string call(1: string in),
}
