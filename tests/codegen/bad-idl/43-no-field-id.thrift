struct Legacy {
  string name,
  i32 age
}
// expect: 2:10: warning: no field id for name in struct Legacy: the wire format may conflict or not be backward compatible (give it one)
// expect: 3:7: warning: no field id for age in struct Legacy: the wire format may conflict or not be backward compatible (give it one)
