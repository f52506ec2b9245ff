enum Level {
  HIGH = 1,
  LOW = 0,
  MEDIUM
}
// expect: 4:3: warning: enum values Level.MEDIUM and Level.HIGH (at 2:10) are both 1; Debug prints HIGH
