const list<i32> PRIMES = [2, 3, "five", 7]
// expect: 1:33: error: type error: element 3 of const PRIMES is declared as i32 but its value is the string "five"
