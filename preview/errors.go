package preview

import (
	"context"
	"errors"
	"fmt"
)

// Code classifies an error. The set is small and fixed, named after gRPC's
// status codes, so that callers can decide what to do (retry, report to the
// user, treat as done) without knowing which provider failed.
type Code int

// The error codes. Unknown is the zero value: an error nobody classified.
const (
	Unknown Code = iota
	NotFound
	AlreadyExists
	InvalidArgument
	FailedPrecondition
	PermissionDenied
	ResourceExhausted
	Canceled
	DeadlineExceeded
	Unimplemented
	Unavailable
	Internal
	// Aborted: a compare-and-swap lost to a concurrent write (the stored
	// version was not the one the caller read); re-read and decide again.
	Aborted
)

var codeNames = [...]string{
	Unknown:            "Unknown",
	NotFound:           "NotFound",
	AlreadyExists:      "AlreadyExists",
	InvalidArgument:    "InvalidArgument",
	FailedPrecondition: "FailedPrecondition",
	PermissionDenied:   "PermissionDenied",
	ResourceExhausted:  "ResourceExhausted",
	Canceled:           "Canceled",
	DeadlineExceeded:   "DeadlineExceeded",
	Unimplemented:      "Unimplemented",
	Unavailable:        "Unavailable",
	Internal:           "Internal",
	Aborted:            "Aborted",
}

// String returns the code's name, such as "NotFound".
func (c Code) String() string {
	if c < 0 || int(c) >= len(codeNames) {
		return fmt.Sprintf("Code(%d)", int(c))
	}
	return codeNames[c]
}

// ParseCode returns the code whose String form is name; ok is false for a
// name that is not one of the codes.
func ParseCode(name string) (c Code, ok bool) {
	for i, n := range codeNames {
		if n == name {
			return Code(i), true
		}
	}
	return Unknown, false
}

// Retryable reports whether an operation that failed with this code may
// succeed if repeated unchanged. Only codes that say nothing happened are
// retryable (see database/sql/driver's rule): Unavailable and
// ResourceExhausted.
func (c Code) Retryable() bool { return c == Unavailable || c == ResourceExhausted }

// Error is an error with a Code. Providers create them with Errorf or
// classify foreign errors with WithCode; the underlying error stays reachable
// with errors.As and errors.Is.
type Error struct {
	Code Code
	Err  error
}

// Error returns the message of the wrapped error; the code is not repeated
// in the text so that messages stay one readable line.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Code.String()
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf formats a message like fmt.Errorf (so %w wraps) and attaches code.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// WithCode classifies err with code. It returns nil for a nil err, and err
// unchanged when err already carries the same code, so wrapping happens once.
func WithCode(code Code, err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) && pe.Code == code {
		return err
	}
	return &Error{Code: code, Err: err}
}

// CodeOf returns the code of the first *Error in err's chain. Context
// cancellation and deadline errors map to Canceled and DeadlineExceeded even
// when nobody classified them. A nil error has code Unknown.
func CodeOf(err error) Code {
	if err == nil {
		return Unknown
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	}
	return Unknown
}

// IsNotFound reports whether err has code NotFound.
func IsNotFound(err error) bool { return CodeOf(err) == NotFound }

// IgnoreNotFound returns nil for a NotFound error and err otherwise; deletes
// use it to treat "already gone" as success.
func IgnoreNotFound(err error) error {
	if IsNotFound(err) {
		return nil
	}
	return err
}
