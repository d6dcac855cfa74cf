package parallelagents

/*
#cgo pkg-config: parallel_agents
#include "parallel_agents.h"
*/
import "C"

import (
	"errors"
	"runtime"
)

// Status is a library status code (pagent_status). The failure codes are exported as
// the sentinel errors below, so that errors.Is(err, ErrConfig) works on any error this
// package returns.
type Status uint32

// The library's failure statuses, usable as sentinels with errors.Is. Their numbers are
// the C ABI's and never change.
const (
	// ErrNull: a required pointer was NULL (a bug in this package if you see it).
	ErrNull Status = 100
	// ErrInvalidArg: an argument is out of range or unusable.
	ErrInvalidArg Status = 101
	// ErrUTF8: a string is not valid UTF-8.
	ErrUTF8 Status = 102
	// ErrConfig: a configuration value was rejected; the message names the field.
	ErrConfig Status = 103
	// ErrNotFound: no such entry (a metrics key).
	ErrNotFound Status = 104
	// ErrStale: a pending call was already completed, or is no longer waited for.
	ErrStale Status = 105
	// ErrDuplicateID: two questions of one batch have the same id (the message names it).
	ErrDuplicateID Status = 106
	// ErrReentrant: a blocking call was made from inside an agent callback.
	ErrReentrant Status = 110
	// ErrShutdown: the library has been shut down with Shutdown.
	ErrShutdown Status = 111
	// ErrForked: the library was started before fork(); it cannot run in the child.
	ErrForked Status = 112
	// ErrRuntime: the library's runtime could not be started or configured.
	ErrRuntime Status = 113
	// ErrPython: a Python error, or Python support not built in.
	ErrPython Status = 120
	// ErrJournal: the journal could not be created, opened, read or written (unwritable
	// path, disk full, not a journal, corrupt); the message says which.
	ErrJournal Status = 130
	// ErrJournalLocked: another executor or process holds the journal (one holder at a
	// time, until its executor is closed).
	ErrJournalLocked Status = 131
	// ErrJournalMismatch: the journal was made by a different agent or configuration.
	ErrJournalMismatch Status = 132
	// ErrJournalVersion: the journal was written by a newer format version.
	ErrJournalVersion Status = 133
	// ErrPanic: a panic inside the library was caught at the boundary (a library bug).
	ErrPanic Status = 199
)

// ErrClosed is returned by methods of an Executor after Close.
var ErrClosed = errors.New("parallelagents: executor is closed")

// ErrLimiterClosed is returned when a [RateLimiter] is used (by [New]) after its Close.
var ErrLimiterClosed = errors.New("parallelagents: rate limiter is closed")

// String is the status's C name, e.g. "PAGENT_ERR_CONFIG".
func (s Status) String() string {
	return C.GoString(C.pagent_status_str(C.uint32_t(s)))
}

// Error makes a Status usable as a sentinel error.
func (s Status) Error() string { return "parallelagents: " + s.String() }

// Error is a failed library call: the operation, its status and the library's message
// (pagent_last_error). It unwraps to its Status.
type Error struct {
	Op      string // the library function or Go method that failed
	Status  Status // why, as a status code
	Message string // the library's message
}

// Error formats the operation, status and message.
func (e *Error) Error() string {
	s := "parallelagents: " + e.Op + ": " + e.Status.String()
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the Status, so errors.Is(err, ErrConfig) works.
func (e *Error) Unwrap() error { return e.Status }

// invalid is an ErrInvalidArg raised on the Go side.
func invalid(op, msg string) error { return &Error{Op: op, Status: ErrInvalidArg, Message: msg} }

// call runs one library call and turns a failure status into an *Error. The message is
// thread-local in the library, so the goroutine stays on one OS thread for the call and
// the read of pagent_last_error.
func call(op string, f func() C.pagent_status) error {
	_, err := callStatus(op, f)
	return err
}

// callStatus is call that also returns the status (for DONE and WAIT_TIMEOUT).
func callStatus(op string, f func() C.pagent_status) (C.pagent_status, error) {
	runtime.LockOSThread()
	st := f()
	var msg string
	if st >= 100 {
		msg = C.GoString(C.pagent_last_error())
	}
	runtime.UnlockOSThread()
	return st, statusErr(op, st, msg)
}

// statusErr is nil for a status below 100 (OK, DONE, WAIT_TIMEOUT), else an *Error.
func statusErr(op string, st C.pagent_status, msg string) error {
	if st < 100 {
		return nil
	}
	return &Error{Op: op, Status: Status(st), Message: msg}
}
