package weft

import (
	"context"
	"errors"
	"fmt"
)

// Code is a Weft status code: the gRPC code set Weft's Status uses.
type Code int32

// The codes, with the values weft.h gives them.
const (
	OK                 Code = 0
	Cancelled          Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// String returns the code's name as Weft spells it ("DEADLINE_EXCEEDED"),
// or "UNKNOWN" for a value outside the set.
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "UNKNOWN"
}

// Error is a failed call or operation: Weft's code and message. A call
// that ends because its context.Context was cancelled or passed its
// deadline is an *Error too (Cancelled or DeadlineExceeded) that unwraps
// to the context's error.
type Error struct {
	// Code is the status code; never OK.
	Code Code
	// Message says what went wrong.
	Message string
	cause   error
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("weft: %s: %s", e.Code, e.Message) }

// Unwrap returns the context error that ended the call, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same code (and, when
// target's message is not empty, the same message), or the context error
// that matches the code: context.DeadlineExceeded for DeadlineExceeded,
// context.Canceled for Cancelled.
func (e *Error) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Code == DeadlineExceeded
	case context.Canceled:
		return e.Code == Cancelled
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// CodeOf returns the code of err: OK for nil, the code of an *Error in its
// chain, Unknown for a declared exception or any other error.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Unknown
}

// Exception is a declared exception (an IDL `throws` entry) the far side
// answered with. The call succeeded on the wire: the reply's result struct
// holds the exception, and so does Payload alone.
type Exception struct {
	// FieldID is the exception's field id in the method's result struct
	// (1 for the first `throws` entry).
	FieldID int16
	// Payload is the exception struct, encoded in the call's protocol.
	Payload []byte
}

// Error implements the error interface.
func (e *Exception) Error() string {
	return fmt.Sprintf("weft: declared exception (result field %d, %d bytes)", e.FieldID, len(e.Payload))
}

func ctxError(err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: DeadlineExceeded, Message: "the context's deadline passed", cause: err}
	}
	return &Error{Code: Cancelled, Message: "the context was cancelled", cause: err}
}
