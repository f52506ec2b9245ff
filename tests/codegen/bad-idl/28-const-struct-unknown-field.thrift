struct Point {
  1: i32 x,
  2: i32 y
}
const Point ORIGIN = {"x": 0, "z": 0}
// expect: 5:31: error: Point has no field named z (in const ORIGIN)
