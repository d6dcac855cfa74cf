package parallelagents

// This file holds only the //export'ed functions the library calls through bridge.c;
// cgo forbids C definitions in the preamble of a file that exports.

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"runtime/cgo"
	"strings"
	"unsafe"
)

// pagoAnswer runs an AgentFunc for pagent_agent_callback. No panic leaves it: a panic
// becomes a failed call. Runs on a library blocking thread.
//
//export pagoAnswer
func pagoAnswer(handle C.uintptr_t, question *C.char, agentID C.size_t, reply *C.pagent_reply) (code C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			replyError(reply, panicError(r).Error())
			code = C.PAGENT_CALLBACK_ERROR
		}
	}()
	fn := cgo.Handle(handle).Value().(AgentFunc)
	answer, err := fn(C.GoString(question), int(agentID))
	if err != nil {
		replyError(reply, err.Error())
		if IsRetryable(err) {
			return C.PAGENT_CALLBACK_RETRY
		}
		return C.PAGENT_CALLBACK_ERROR
	}
	if strings.IndexByte(answer, 0) >= 0 {
		replyError(reply, "the Go agent's answer contains a NUL byte")
		return C.PAGENT_CALLBACK_ERROR
	}
	a := C.CString(answer)
	defer C.free(unsafe.Pointer(a))
	if C.pagent_reply_set_answer(reply, a) != C.PAGENT_OK {
		return C.PAGENT_CALLBACK_ERROR
	}
	return C.PAGENT_CALLBACK_OK
}

func replyError(reply *C.pagent_reply, msg string) {
	m := C.CString(strings.ReplaceAll(msg, "\x00", "\\0"))
	defer C.free(unsafe.Pointer(m))
	C.pagent_reply_set_error(reply, m)
}

// pagoStart starts an AsyncAgentFunc call for pagent_agent_callback_async. A panic in
// the function fails the pending call. Runs on a library worker thread.
//
//export pagoStart
func pagoStart(handle C.uintptr_t, question *C.char, agentID C.size_t, token C.uintptr_t) {
	p := Pending{token: uintptr(token)}
	defer func() {
		if r := recover(); r != nil {
			_ = p.Fail(panicError(r))
		}
	}()
	fn := cgo.Handle(handle).Value().(AsyncAgentFunc)
	fn(C.GoString(question), int(agentID), p)
}

// pagoRelease is the agents' free_fn: the library calls it once, when nothing uses the
// agent any more; the handle is deleted here and nowhere else.
//
//export pagoRelease
func pagoRelease(handle C.uintptr_t) {
	cgo.Handle(handle).Delete()
	liveHandles.Add(-1)
}
