package weft

// #include "weft.h"
import "C"

import (
	"runtime"
	"sync"
)

// Runtime is Weft's Tokio runtime: the threads that run connections,
// timers and the calls of the clients and servers made on it. Safe for
// concurrent use.
type Runtime struct {
	p       *C.weft_runtime
	once    sync.Once
	cleanup runtime.Cleanup
}

// NewRuntime starts a runtime with workers threads (0: one per CPU).
func NewRuntime(workers int) (*Runtime, error) {
	if workers < 0 {
		return nil, &Error{Code: InvalidArgument, Message: "workers is negative"}
	}
	r := &Runtime{}
	var e *C.weft_error
	if err := check(C.weft_runtime_new(C.uint32_t(workers), &r.p, &e), e); err != nil {
		return nil, err
	}
	// An unreachable runtime's handle is freed; its clients and servers
	// keep Weft's threads running until they are freed too.
	r.cleanup = runtime.AddCleanup(r, func(p *C.weft_runtime) { C.weft_runtime_free(p) }, r.p)
	return r, nil
}

// Close releases the runtime handle. Clients and servers made on it keep
// it running until they are closed too. Closing twice is harmless; a
// runtime that is not closed is released once unreachable.
func (r *Runtime) Close() {
	r.once.Do(func() {
		r.cleanup.Stop()
		C.weft_runtime_free(r.p)
	})
}
