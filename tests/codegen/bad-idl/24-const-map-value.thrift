const map<string, i32> LIMITS = {"a": 1, "b": 2.5}
// expect: 1:47: error: type error: value 2 of const LIMITS is declared as i32 but its value is a double
