exception Full {}
service Log {
  oneway void write(1: string line) throws (1: Full full)
}
// expect: 3:37: error: oneway method Log.write cannot throw exceptions
