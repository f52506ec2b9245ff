// Package weftthrift encodes and decodes the structs Apache Thrift's Go
// generator writes (`thrift --gen go`) for calls through package weft: the
// `method_args` struct a client sends, the `method_result` struct it gets
// back, and the same on a server.
//
//	var res echo.EchoAddResult
//	err := weftthrift.Call(ctx, client, "add", &echo.EchoAddArgs{A: 2, B: 3}, &res)
//	// err == nil: res.GetSuccess() == 5
package weftthrift

import (
	"context"
	"errors"

	"github.com/apache/thrift/lib/go/thrift"

	weft "github.com/weft-rpc/weft/ffi/go"
)

var conf = &thrift.TConfiguration{}

func protocol(p weft.Protocol, t thrift.TTransport) thrift.TProtocol {
	if p == weft.Compact {
		return thrift.NewTCompactProtocolConf(t, conf)
	}
	return thrift.NewTBinaryProtocolConf(t, conf)
}

// Encode encodes s in protocol p.
func Encode(p weft.Protocol, s thrift.TStruct) ([]byte, error) {
	buf := thrift.NewTMemoryBufferLen(256)
	if err := s.Write(context.Background(), protocol(p, buf)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode decodes b, encoded in protocol p, into s.
func Decode(p weft.Protocol, b []byte, s thrift.TStruct) error {
	buf := thrift.NewTMemoryBufferLen(len(b))
	if _, err := buf.Write(b); err != nil {
		return err
	}
	return s.Read(context.Background(), protocol(p, buf))
}

// Call encodes args, calls method through c and decodes the answer into
// result. A declared exception is decoded into result (its exception
// field set) and returned as the *weft.Exception error; use
// DecodeException to read it alone. Other failures are *weft.Error.
func Call(ctx context.Context, c *weft.Client, method string, args, result thrift.TStruct) error {
	b, err := Encode(c.Protocol(), args)
	if err != nil {
		return err
	}
	reply, err := c.Call(ctx, method, b)
	var ex *weft.Exception
	if err != nil && !errors.As(err, &ex) {
		return err
	}
	if derr := Decode(c.Protocol(), reply.Result, result); derr != nil {
		return derr
	}
	return err
}

// DecodeException decodes a declared exception, received in protocol p,
// into exc (the IDL exception's generated struct).
func DecodeException(p weft.Protocol, ex *weft.Exception, exc thrift.TStruct) error {
	return Decode(p, ex.Payload, exc)
}

// Args decodes a server call's args into args.
func Args(call *weft.Call, args thrift.TStruct) error {
	return Decode(call.Protocol, call.Args, args)
}

// Reply encodes result (the method's result struct) in the call's
// protocol and answers with it.
func Reply(call *weft.Call, result thrift.TStruct) error {
	b, err := Encode(call.Protocol, result)
	if err != nil {
		_ = call.Fail(weft.Internal, "encoding the result: "+err.Error())
		return err
	}
	return call.Reply(b)
}

// Exception encodes exc (a declared exception's struct) in the call's
// protocol and answers with it as result field fieldID.
func Exception(call *weft.Call, fieldID int16, exc thrift.TStruct) error {
	b, err := Encode(call.Protocol, exc)
	if err != nil {
		_ = call.Fail(weft.Internal, "encoding the exception: "+err.Error())
		return err
	}
	return call.Exception(fieldID, b)
}
