// The hello service of Weft's quickstart.
namespace rs hello

exception NotFound {
  1: string name,
}

struct Greeting {
  1: string text,
  2: i64 count,
  3: list<string> tags,
}

service Hello {
  // Greets `name`; `times` is echoed in the greeting's count.
  Greeting greet(1: string name, 2: i64 times),
  // Looks a name up; unknown names throw NotFound.
  string lookup(1: string name) throws (1: NotFound missing),
  oneway void log(1: string line),
}
