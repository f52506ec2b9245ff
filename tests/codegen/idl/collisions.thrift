// A service whose generated items' usual names are the IDL's own: the
// codegen must name them clear of these (tests/collisions.rs).
namespace rs collisions

struct EchoRequest {
  1: optional string text,
}

struct EchoResponse {
  1: optional string text,
}

struct EchoServer {
  1: optional string name,
}

exception EchoClient {
  1: optional string why,
}

service Echo {
  EchoResponse echo(1: EchoRequest req, 2: EchoServer from) throws (1: EchoClient oops),
}
