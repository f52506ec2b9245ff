package weft

// The Go functions Weft calls, on its own threads. A file with //export
// may only declare C in its preamble; the trampolines are in cgo.go.

// #include "weft.h"
import "C"

import (
	"context"
	"runtime/cgo"
	"time"
	"unsafe"
)

// weftGoCallDone receives the completion of a call started by Client.Call.
// It copies what Go needs, releases the completion and hands the result to
// the waiting call without blocking (the channel has room for it), so it
// holds Weft's thread only briefly, and frees everything even when the
// call was abandoned.
//
//export weftGoCallDone
func weftGoCallDone(_ unsafe.Pointer, c *C.weft_completion) {
	h := cgo.Handle(c.tag)
	p := h.Value().(*pending)
	h.Delete()
	p.mu.Lock()
	p.completed = true
	p.mu.Unlock()
	if p.ctx != nil {
		C.weft_ctx_free(p.ctx)
	}
	var r callResult
	if c.code != C.WEFT_OK {
		r.err = &Error{Code: Code(c.code), Message: C.GoString(C.weft_error_message(c.error))}
	} else {
		rep := &Reply{
			Result:      goBytes(c.reply.result.data, c.reply.result.len),
			ExceptionID: int16(c.reply.exception_id),
			Backward:    readScope(c.ctx, C.WEFT_SCOPE_BACKWARD),
		}
		if rep.ExceptionID != 0 && c.reply.exception != nil {
			// The exception lies inside the result buffer: slice the copy
			// at the same offset. Pointer to integer conversions only.
			off := int(uintptr(unsafe.Pointer(c.reply.exception)) - uintptr(unsafe.Pointer(c.reply.result.data)))
			n := int(c.reply.exception_len)
			if off >= 0 && off+n <= len(rep.Result) {
				rep.Exception = rep.Result[off : off+n : off+n]
			}
			r.err = &Exception{FieldID: rep.ExceptionID, Payload: rep.Exception}
		}
		r.reply = rep
	}
	C.weft_completion_release(c)
	p.done <- r
}

// weftGoDispatch receives a call for a Server: it copies the request and
// the context's deadline and metainfo (valid only during this callback)
// and runs the handler on a new goroutine, so Weft's thread, which holds
// the connection's reader, is released at once.
//
//export weftGoDispatch
func weftGoDispatch(hv C.uintptr_t, req *C.weft_request, resp *C.weft_responder) {
	d := cgo.Handle(hv).Value().(*dispatcher)
	call := &Call{
		Method:   goString(req.method, req.method_len),
		Service:  goString(req.service, req.service_len),
		Args:     goBytes(req.args, req.args_len),
		Protocol: Protocol(req.protocol),
		Oneway:   bool(req.oneway),
		ctx:      req.ctx,
		resp:     resp,
	}
	var ms C.int64_t
	if C.weft_ctx_remaining_ms(req.ctx, &ms, nil) != C.WEFT_OK {
		ms = -1
	}
	persistent := readScope(req.ctx, C.WEFT_SCOPE_PERSISTENT)
	call.transient = readScope(req.ctx, C.WEFT_SCOPE_UPSTREAM)
	base := context.Background()
	for k, v := range persistent {
		base = WithPersistent(base, k, v)
	}
	var ctx context.Context
	if ms >= 0 {
		ctx, call.cancel = context.WithDeadline(base, time.Now().Add(time.Duration(ms)*time.Millisecond))
	} else {
		ctx, call.cancel = context.WithCancel(base)
	}
	go d.serve(ctx, call)
}
