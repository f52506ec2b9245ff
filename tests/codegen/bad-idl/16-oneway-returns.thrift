service Log {
  oneway i32 write(1: string line)
}
// expect: 2:10: warning: oneway method Log.write should return void: its result i32 is never sent
