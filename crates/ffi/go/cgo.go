package backdrop

// #cgo pkg-config: backdrop
// #include <backdrop.h>
// #include <stdlib.h>
import "C"

import (
	"strings"
	"time"
	"unsafe"
)

// Version is the version of the linked libbackdrop, such as "0.1.0".
func Version() string {
	return C.GoString(C.backdrop_version())
}

// cString copies s for C; refuses a string with a NUL byte, which C would cut short.
func cString(s, what string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArgument, Message: what + " contains a NUL byte"}
	}
	return C.CString(s), nil
}

func freeString(s *C.char) {
	C.free(unsafe.Pointer(s))
}

// millis converts a duration to whole milliseconds for C, clamped to [0, max uint32].
func millis(d time.Duration) C.uint32_t {
	ms := d.Milliseconds()
	switch {
	case ms <= 0:
		return 0
	case ms > int64(^uint32(0)):
		return C.uint32_t(^uint32(0))
	default:
		return C.uint32_t(ms)
	}
}

// check turns a result code and its optional detail into an error (nil for success); it frees
// the detail either way.
func check(code C.backdrop_result, detail *C.backdrop_error) error {
	if detail != nil {
		defer C.backdrop_error_free(detail)
	}
	if code == C.BACKDROP_OK {
		return nil
	}
	err := &Error{Code: Code(code)}
	if detail == nil {
		err.Message = Code(code).Message()
		return err
	}
	err.Code = Code(C.backdrop_error_code(detail))
	err.Message = C.GoString(C.backdrop_error_message(detail))
	err.HTTPStatus = int(C.backdrop_error_http_status(detail))
	var state C.int32_t
	if C.backdrop_error_task_state(detail, &state) {
		err.TaskState = int32(state)
		err.HasTaskState = true
	}
	if id := C.backdrop_error_task_id(detail); id != nil {
		err.TaskID = C.GoString(id)
	}
	err.Recovery = Recovery(C.backdrop_error_recovery(detail))
	err.Transient = bool(C.backdrop_error_is_transient(detail))
	return err
}
