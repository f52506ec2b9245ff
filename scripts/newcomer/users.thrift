// A newcomer's first service (scripts/newcomer.sh): a struct with
// required, default and optional fields, an enum, a list, a map, declared
// exceptions and a one-way method.
namespace rs users

enum State {
  ACTIVE = 1,
  SUSPENDED = 2,
}

struct Place {
  1: required string city,
  2: optional string zip,
}

struct User {
  1: required i64 id,
  2: required string name,
  3: State state,
  4: list<string> tags,
  5: map<string, i32> scores,
  6: optional Place place,
}

exception NotFound {
  1: i64 id,
}

exception Invalid {
  1: string reason,
}

service Users {
  // The user `id`; unknown ids (here: negative ones) throw NotFound.
  User get(1: i64 id) throws (1: NotFound missing),
  // A new user; an empty name throws Invalid.
  User create(1: string name, 2: list<string> tags, 3: Place place) throws (1: Invalid invalid),
  // Each id's score, keyed by the id in decimal.
  map<string, i32> scores(1: list<i64> ids),
  // Recorded by the server, answered by no one.
  oneway void audit(1: string line),
}
