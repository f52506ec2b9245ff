service Shop {
  Receipt buy(1: Cart cart)
}
// expect: 2:3: error: unknown type Receipt in the result of Shop.buy
// expect: 2:18: error: unknown type Cart in field cart of the arguments of Shop.buy
