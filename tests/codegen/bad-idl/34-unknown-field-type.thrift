struct Order {
  1: i64 id,
  2: list<Item> items
}
// expect: 3:11: error: unknown type Item in field items of struct Order
