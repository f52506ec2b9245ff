package weft

// The C side of the binding: the header, the library, and small C
// trampolines that hand Weft the Go callbacks exported in callbacks.go.
// Handles travel to C as integers (cgo.Handle values), never as Go
// pointers, so no Go memory is retained by C past a call.

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: -lweft
#include <stdlib.h>
#include "weft.h"

extern void weftGoCallDone(void *user_data, weft_completion *completion);
extern void weftGoDispatch(uintptr_t handler, weft_request *request, weft_responder *responder);

static void weft_go_dispatch(void *user_data, const weft_request *request,
                             weft_responder *responder) {
	weftGoDispatch((uintptr_t)user_data, (weft_request *)request, responder);
}

weft_code weft_go_call(const weft_client *client, const char *method,
                              const uint8_t *args, size_t args_len,
                              const weft_ctx *ctx, uint64_t tag, weft_error **err) {
	return weft_client_call_async(client, method, args, args_len, ctx, tag,
	                              weftGoCallDone, NULL, err);
}

weft_code weft_go_serve(weft_runtime *rt, const weft_server_options *opts,
                               const char *address, uintptr_t handler,
                               weft_server **out, weft_error **err) {
	return weft_server_serve(rt, opts, address, weft_go_dispatch, (void *)handler, out, err);
}
*/
import "C"

import (
	"sync"
	"unsafe"
)

// check turns a weft_code and its error into a Go error (nil for WEFT_OK),
// freeing the C error.
func check(code C.weft_code, e *C.weft_error) error {
	if code == C.WEFT_OK {
		return nil
	}
	err := &Error{Code: Code(code), Message: C.GoString(C.weft_error_message(e))}
	C.weft_error_free(e)
	return err
}

// cString returns a C copy of s that the caller frees with C.free.
func cString(s string) *C.char { return C.CString(s) }

func free(p *C.char) { C.free(unsafe.Pointer(p)) }

// methodNames caches the C strings of method names, so that a call does
// not allocate and free one. Bounded: past maxCachedMethods names, calls
// allocate per call.
var (
	methodNames   sync.Map // string -> *C.char, never freed
	methodCount   int
	methodCountMu sync.Mutex
)

const maxCachedMethods = 1024

// methodName returns a C string for name and whether the caller must free it.
func methodName(name string) (*C.char, bool) {
	if p, ok := methodNames.Load(name); ok {
		return p.(*C.char), false
	}
	methodCountMu.Lock()
	defer methodCountMu.Unlock()
	if p, ok := methodNames.Load(name); ok {
		return p.(*C.char), false
	}
	p := cString(name)
	if methodCount >= maxCachedMethods {
		return p, true
	}
	methodCount++
	methodNames.Store(name, p)
	return p, false
}

// bytesPtr returns a pointer to b's first byte for C to read during one
// call (nil when b is empty). Sound: cgo lets C read Go memory that holds
// no Go pointers for the duration of the call, and Weft copies the bytes
// before the call returns.
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b)))
}

// goBytes copies n bytes at p, which Weft keeps valid while we copy.
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	// Sound: p points at n readable bytes owned by the library until they
	// are released, which happens after this copy.
	src := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	out := make([]byte, len(src))
	copy(out, src)
	return out
}

// goString copies n bytes of UTF-8 at p.
func goString(p *C.uint8_t, n C.size_t) string {
	if p == nil || n == 0 {
		return ""
	}
	// Sound as in goBytes: C.GoStringN copies.
	return C.GoStringN((*C.char)(unsafe.Pointer(p)), C.int(n))
}

// readScope copies the metainfo of one scope of ctx (nil when empty).
func readScope(ctx *C.weft_ctx, scope C.int32_t) map[string]string {
	if ctx == nil {
		return nil
	}
	var n C.size_t
	if C.weft_ctx_count(ctx, scope, &n, nil) != C.WEFT_OK || n == 0 {
		return nil
	}
	out := make(map[string]string, int(n))
	for i := C.size_t(0); i < n; i++ {
		var k, v C.weft_bytes
		if C.weft_ctx_entry(ctx, scope, i, &k, &v, nil) != C.WEFT_OK {
			break
		}
		out[goString(k.data, k.len)] = goString(v.data, v.len)
		C.weft_bytes_free(&k)
		C.weft_bytes_free(&v)
	}
	return out
}

// setScope sets metainfo entries in one scope of ctx.
func setScope(ctx *C.weft_ctx, scope C.int32_t, kv map[string]string) error {
	for k, v := range kv {
		ck, cv := cString(k), cString(v)
		var e *C.weft_error
		code := C.weft_ctx_set(ctx, scope, ck, cv, &e)
		free(ck)
		free(cv)
		if err := check(code, e); err != nil {
			return err
		}
	}
	return nil
}

// LiveHandles reports how many Weft objects are alive in the process
// (handles, buffers, errors, and the context and responder of each call
// being served); leak tests compare it before and after.
func LiveHandles() int { return int(C.weft_live_handles()) }
