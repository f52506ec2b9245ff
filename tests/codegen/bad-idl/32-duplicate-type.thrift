struct User {
  1: string name
}
exception User {
  1: string why
}
// expect: 4:11: error: User is defined twice: here as an exception and first as a struct (at 1:8)
