struct Order {
  1: common.Money total
}
// expect: 2:6: error: unknown type common.Money in field total of struct Order (no included file is named common.thrift)
