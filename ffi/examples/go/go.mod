module github.com/weft-rpc/weft/ffi/examples/go

go 1.26

require github.com/weft-rpc/weft/ffi/go v0.0.0

replace github.com/weft-rpc/weft/ffi/go => ../../go
