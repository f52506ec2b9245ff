// Package gen holds Go code that Apache Thrift's compiler (Debian's
// thrift-compiler) generates from tests/interop/idl/echo.thrift, checked in
// and gofmt-ed; ffi/tests/go.rs regenerates it and fails on drift.
package gen

//go:generate thrift --gen go:package_prefix=github.com/weft-rpc/weft/ffi/go/internal/gen/,skip_remote -out . ../../../../tests/interop/idl/echo.thrift
//go:generate gofmt -w echo
