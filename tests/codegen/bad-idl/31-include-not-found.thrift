// A shared file that is not there.
include "missing/common.thrift"
struct A {}
// expect: 2:9: error: include "missing/common.thrift" not found (searched {dir}, {dir}/inc)
