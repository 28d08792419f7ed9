package backdrop

// #include <backdrop.h>
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Code is a libbackdrop result code: 0 for success, and banded failure families (7000
// arguments, 7100 input rules, 7200 service and network, 7300 task, 7400 timeout and
// cancellation, 7500 local files, 7600 panics, 7900 other). The values come from backdrop.h.
type Code uint32

// The result codes of backdrop.h.
const (
	// CodeOK: Success.
	CodeOK Code = C.BACKDROP_OK
	// CodeNullParameter: A pointer parameter that must not be NULL was NULL.
	CodeNullParameter Code = C.BACKDROP_ERR_NULL_PARAMETER
	// CodeInvalidUTF8: A string parameter is not valid UTF-8.
	CodeInvalidUTF8 Code = C.BACKDROP_ERR_INVALID_UTF8
	// CodeInvalidArgument: A parameter has a value outside its documented range.
	CodeInvalidArgument Code = C.BACKDROP_ERR_INVALID_ARGUMENT
	// CodeAlreadyUsed: The object was already consumed (a client builder after a successful build).
	CodeAlreadyUsed Code = C.BACKDROP_ERR_ALREADY_USED
	// CodeResultNumberOutOfRange: A result number is not one of the task's results: numbers run
	// from 1 (data.image_1) to the task's result count.
	CodeResultNumberOutOfRange Code = C.BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE
	// CodeNestedCall: A blocking call was made from inside a progress callback or another async runtime.
	CodeNestedCall Code = C.BACKDROP_ERR_NESTED_CALL
	// CodeConfig: The client configuration is unusable (empty key, bad base URL, …).
	CodeConfig Code = C.BACKDROP_ERR_CONFIG
	// CodeRuntime: The client's threads could not be started.
	CodeRuntime Code = C.BACKDROP_ERR_RUNTIME
	// CodeInvalidEmptyFile: The image file is empty.
	CodeInvalidEmptyFile Code = C.BACKDROP_ERR_INVALID_EMPTY_FILE
	// CodeInvalidNotPNG: The image is not a PNG.
	CodeInvalidNotPNG Code = C.BACKDROP_ERR_INVALID_NOT_PNG
	// CodeInvalidCorruptPNG: The PNG header is damaged or cut short.
	CodeInvalidCorruptPNG Code = C.BACKDROP_ERR_INVALID_CORRUPT_PNG
	// CodeInvalidFileTooLarge: The image file is over 20 MiB.
	CodeInvalidFileTooLarge Code = C.BACKDROP_ERR_INVALID_FILE_TOO_LARGE
	// CodeInvalidImageTooSmall: A side of the image is under 256 px.
	CodeInvalidImageTooSmall Code = C.BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL
	// CodeInvalidImageTooLarge: A side of the image is over 4096 px.
	CodeInvalidImageTooLarge Code = C.BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE
	// CodeInvalidNoTransparency: The PNG has no transparency (no alpha channel, no tRNS chunk).
	CodeInvalidNoTransparency Code = C.BACKDROP_ERR_INVALID_NO_TRANSPARENCY
	// CodeInvalidEmptyPrompt: The prompt is empty or blank.
	CodeInvalidEmptyPrompt Code = C.BACKDROP_ERR_INVALID_EMPTY_PROMPT
	// CodeInvalidPromptTooLong: The prompt is over 1024 characters.
	CodeInvalidPromptTooLong Code = C.BACKDROP_ERR_INVALID_PROMPT_TOO_LONG
	// CodeInvalidBatchSize: The batch size is not 1 or 2.
	CodeInvalidBatchSize Code = C.BACKDROP_ERR_INVALID_BATCH_SIZE
	// CodeInvalidSceneType: The scene type is not a positive template id.
	CodeInvalidSceneType Code = C.BACKDROP_ERR_INVALID_SCENE_TYPE
	// CodeInvalidImageURL: The image URL is not an absolute http(s) URL.
	CodeInvalidImageURL Code = C.BACKDROP_ERR_INVALID_IMAGE_URL
	// CodeInvalidImageSource: The request has no source image, or two.
	CodeInvalidImageSource Code = C.BACKDROP_ERR_INVALID_IMAGE_SOURCE
	// CodeInvalidBackground: The request has no background description, or both a prompt and a scene type.
	CodeInvalidBackground Code = C.BACKDROP_ERR_INVALID_BACKGROUND
	// CodeInvalidDamagedPNG: The PNG's structure is damaged: cut short, a chunk's CRC wrong, no IEND.
	CodeInvalidDamagedPNG Code = C.BACKDROP_ERR_INVALID_DAMAGED_PNG
	// CodeInvalidTrailingData: The PNG goes on after its IEND chunk.
	CodeInvalidTrailingData Code = C.BACKDROP_ERR_INVALID_TRAILING_DATA
	// CodeInvalidDamagedImageData: The PNG's compressed image data is damaged.
	CodeInvalidDamagedImageData Code = C.BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA
	// CodeInvalidNothingTransparent: No pixel is transparent: the background was not removed.
	CodeInvalidNothingTransparent Code = C.BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT
	// CodeInvalidNothingVisible: Every pixel is fully transparent: there is no foreground.
	CodeInvalidNothingVisible Code = C.BACKDROP_ERR_INVALID_NOTHING_VISIBLE
	// CodeInvalidOther: The input breaks a rule this version has no specific code for.
	CodeInvalidOther Code = C.BACKDROP_ERR_INVALID_OTHER
	// CodeBadRequest: HTTP 400: the service rejected the parameters.
	CodeBadRequest Code = C.BACKDROP_ERR_BAD_REQUEST
	// CodeUnauthorized: HTTP 401: the service refused the API key.
	CodeUnauthorized Code = C.BACKDROP_ERR_UNAUTHORIZED
	// CodeNotFound: HTTP 404: unknown task id or URL.
	CodeNotFound Code = C.BACKDROP_ERR_NOT_FOUND
	// CodePayloadTooLarge: HTTP 413: the upload is too large for the service.
	CodePayloadTooLarge Code = C.BACKDROP_ERR_PAYLOAD_TOO_LARGE
	// CodeRateLimited: HTTP 429: rate limited, and the retries did not get through.
	CodeRateLimited Code = C.BACKDROP_ERR_RATE_LIMITED
	// CodeServer: HTTP 5xx: the service failed. A query is retried first; a create never is (a gateway may have passed it on before failing: backdrop_error_may_have_created_task says so).
	CodeServer Code = C.BACKDROP_ERR_SERVER
	// CodeUnexpectedStatus: An HTTP status the service does not document.
	CodeUnexpectedStatus Code = C.BACKDROP_ERR_UNEXPECTED_STATUS
	// CodeInvalidResponse: The service's answer is not the documented JSON.
	CodeInvalidResponse Code = C.BACKDROP_ERR_INVALID_RESPONSE
	// CodeNetwork: The connection failed or timed out; nothing was created.
	CodeNetwork Code = C.BACKDROP_ERR_NETWORK
	// CodeNetworkMaybeCreated: The connection failed after a create was sent: a task may exist and be charged, so the create was not sent again. Do not blindly retry it.
	CodeNetworkMaybeCreated Code = C.BACKDROP_ERR_NETWORK_MAYBE_CREATED
	// CodeRedirected: The service answered with a redirect (HTTP 3xx). The API key goes only to the base URL's origin, so no redirect is followed: set the base URL to where the service lives.
	CodeRedirected Code = C.BACKDROP_ERR_REDIRECTED
	// CodeTaskFailed: The task ended in a failed state (the state is in the error detail).
	CodeTaskFailed Code = C.BACKDROP_ERR_TASK_FAILED
	// CodeResultMissing: The task succeeded but reported no result image.
	CodeResultMissing Code = C.BACKDROP_ERR_RESULT_MISSING
	// CodeResultExpired: The result URL expired (URLs live 1 hour): generate again.
	CodeResultExpired Code = C.BACKDROP_ERR_RESULT_EXPIRED
	// CodeResultInvalid: The result could not be downloaded or is not an image.
	CodeResultInvalid Code = C.BACKDROP_ERR_RESULT_INVALID
	// CodeTaskNotSucceeded: The task has not succeeded (yet): wait for it before downloading.
	CodeTaskNotSucceeded Code = C.BACKDROP_ERR_TASK_NOT_SUCCEEDED
	// CodeTimeout: Waiting ran out of time; the task may still finish: wait again or resume by its id.
	CodeTimeout Code = C.BACKDROP_ERR_TIMEOUT
	// CodeCancelled: The progress callback cancelled the wait; the task itself goes on.
	CodeCancelled Code = C.BACKDROP_ERR_CANCELLED
	// CodeIO: A local file could not be read or written.
	CodeIO Code = C.BACKDROP_ERR_IO
	// CodePanic: A bug in the library (a Rust panic) was caught before it reached the caller. No output was written; the objects passed in are still valid to free.
	CodePanic Code = C.BACKDROP_ERR_PANIC
	// CodeCreditCap: The create was not sent: the most it can cost would pass the client's credit cap (backdrop_client_builder_set_max_credits). Nothing was sent or charged; it may go once a client with a higher cap (or credits refunded by failed tasks) allows.
	CodeCreditCap Code = C.BACKDROP_ERR_CREDIT_CAP
	// CodeOther: A failure this version of the library has no specific code for.
	CodeOther Code = C.BACKDROP_ERR_OTHER
)

// String is the code's name in backdrop.h, such as "BACKDROP_ERR_TIMEOUT".
func (c Code) String() string {
	return C.GoString(C.backdrop_result_name(C.uint32_t(c)))
}

// Message is what the code means and what to do about it.
func (c Code) Message() string {
	needed := C.backdrop_result_message(C.uint32_t(c), nil, 0)
	buf := make([]byte, int(needed))
	if len(buf) == 0 {
		return ""
	}
	C.backdrop_result_message(C.uint32_t(c), (*C.char)(unsafe.Pointer(&buf[0])), needed)
	return string(buf[:len(buf)-1])
}

// Sentinel errors: errors.Is(err, ErrX) tells the family (or, for the last group, the code) of a
// failure. Every error of this package that comes from the library is an *Error.
var (
	// ErrUsage: the call itself was wrong (7000–7099): a closed client, an argument out of range,
	// a result number that is not one of the task's (they run from 1 to the result count).
	ErrUsage = errors.New("backdrop: invalid use of the API")
	// ErrInvalidInput: the input breaks a rule of the service (7100–7199); nothing was sent.
	ErrInvalidInput = errors.New("backdrop: the input breaks a rule of the service")
	// ErrService: the service or the network failed (7200–7299).
	ErrService = errors.New("backdrop: the service or the network failed")
	// ErrTask: the task failed or its results cannot be had (7300–7399).
	ErrTask = errors.New("backdrop: the task failed or has no usable result")
	// ErrTimeout: the task did not finish in time (7400); it may still finish.
	ErrTimeout = errors.New("backdrop: the task did not finish in time")
	// ErrCanceled: waiting was cancelled (7401), by the context or by closing the client.
	ErrCanceled = errors.New("backdrop: waiting was canceled")
	// ErrIO: a local file could not be read or written (7500–7599).
	ErrIO = errors.New("backdrop: a local file could not be read or written")
	// ErrPanic: a bug in the library was caught at its boundary (7600–7699).
	ErrPanic = errors.New("backdrop: a bug in libbackdrop was caught")
	// ErrCreditCap: the create would pass the client's credit cap (7700–7799); nothing was sent.
	ErrCreditCap = errors.New("backdrop: the credit cap would be passed")

	// ErrClosed: the client or task was closed. The *Error of a call on a closed object matches
	// both ErrClosed and ErrUsage.
	ErrClosed = errors.New("backdrop: use of a closed client or task")
	// ErrUnauthorized: HTTP 401, the API key was refused.
	ErrUnauthorized = errors.New("backdrop: the API key was refused")
	// ErrNotFound: HTTP 404, an unknown task id.
	ErrNotFound = errors.New("backdrop: not found")
	// ErrRateLimited: HTTP 429 after every retry.
	ErrRateLimited = errors.New("backdrop: rate limited")
	// ErrTaskFailed: the task ended in a failed state (see Error.TaskState).
	ErrTaskFailed = errors.New("backdrop: the task failed")
	// ErrResultExpired: the result URL expired (they live one hour).
	ErrResultExpired = errors.New("backdrop: the result expired")

	// ErrMaybeCreated: a create was sent and its answer never seen (a timeout, a cut
	// connection, any HTTP 5xx, an unreadable answer): a task may exist and be charged. Do not
	// create the same input again unless the user accepts paying twice. Matches the errors whose
	// Recovery is RecoveryUnconfirmed.
	ErrMaybeCreated = errors.New("backdrop: a task may have been created and charged")
	// ErrResumable: a task exists and may still finish (a timeout, trouble while polling or
	// downloading): wait again with Client.TaskFromID and its id; never create it again. Matches
	// the errors whose Recovery is RecoveryResume.
	ErrResumable = errors.New("backdrop: the task exists: resume it by its id")
	// ErrResultsLost: the task was charged (or may have been) and its results are gone.
	// Matches the errors whose Recovery is RecoveryResultsLost.
	ErrResultsLost = errors.New("backdrop: the task's results are lost")
)

// Recovery is what a caller can do after a failure: core's classification, the same answer the
// CLI and the Lambda act on (backdrop_recovery in backdrop.h).
type Recovery uint32

// The recoveries of backdrop.h.
const (
	// RecoveryNone: not a failure of the library (an error of this package without detail).
	RecoveryNone Recovery = C.BACKDROP_RECOVERY_NONE
	// RecoveryRetry: nothing is running and nothing was charged; trying again later may succeed.
	RecoveryRetry Recovery = C.BACKDROP_RECOVERY_RETRY
	// RecoveryResume: a task exists and may still finish: resume it by id; never create again.
	RecoveryResume Recovery = C.BACKDROP_RECOVERY_RESUME
	// RecoveryUnconfirmed: a create may have been accepted and charged; its id is unknown.
	RecoveryUnconfirmed Recovery = C.BACKDROP_RECOVERY_UNCONFIRMED
	// RecoveryResultsLost: the task was charged (or may have been) and its results are gone.
	RecoveryResultsLost Recovery = C.BACKDROP_RECOVERY_RESULTS_LOST
	// RecoveryPermanent: the same input would fail the same way; nothing was charged.
	RecoveryPermanent Recovery = C.BACKDROP_RECOVERY_PERMANENT
)

// String names the recovery: "retry", "resume", "unconfirmed", "results_lost", "permanent".
func (r Recovery) String() string {
	switch r {
	case RecoveryRetry:
		return "retry"
	case RecoveryResume:
		return "resume"
	case RecoveryUnconfirmed:
		return "unconfirmed"
	case RecoveryResultsLost:
		return "results_lost"
	case RecoveryPermanent:
		return "permanent"
	}
	return "none"
}

// Error is a failure reported by libbackdrop, with its detail.
type Error struct {
	// Code is the result code.
	Code Code
	// Message says what went wrong and what to do; it never contains the API key.
	Message string
	// HTTPStatus is the HTTP status behind the failure, or 0.
	HTTPStatus int
	// TaskState is the failed state of a failed task, or the last state of a timed-out one,
	// when HasTaskState is true.
	TaskState    int32
	HasTaskState bool
	// TaskID is the task the failure concerns, or "".
	TaskID string
	// Recovery is what can be done about the failure (see Recovery).
	Recovery Recovery
	// Transient is true when starting over (a new create for the same input) is safe and may
	// succeed later: Recovery is RecoveryRetry. It is false whenever a task may exist.
	Transient bool

	cause error
}

// closedError is the error of a call on a closed client or task.
func closedError(what string) error {
	return &Error{
		Code:    CodeInvalidArgument,
		Message: "the " + what + " is closed",
		cause:   ErrClosed,
	}
}

func (e *Error) Error() string {
	return fmt.Sprintf("backdrop: %s (%s)", e.Message, e.Code)
}

// Unwrap gives the cause behind the failure: the context's error when a context ended a wait,
// ErrClosed when the client or task was closed.
func (e *Error) Unwrap() error {
	return e.cause
}

// Is matches the sentinel errors: the family of the code, or the code itself.
func (e *Error) Is(target error) bool {
	c := e.Code
	switch target {
	case ErrUsage:
		return c >= 7000 && c < 7100
	case ErrInvalidInput:
		return c >= 7100 && c < 7200
	case ErrService:
		return c >= 7200 && c < 7300
	case ErrTask:
		return c >= 7300 && c < 7400
	case ErrTimeout:
		return c == CodeTimeout
	case ErrCanceled:
		return c == CodeCancelled
	case ErrIO:
		return c >= 7500 && c < 7600
	case ErrPanic:
		return c >= 7600 && c < 7700
	case ErrCreditCap:
		return c >= 7700 && c < 7800
	case ErrUnauthorized:
		return c == CodeUnauthorized
	case ErrNotFound:
		return c == CodeNotFound
	case ErrRateLimited:
		return c == CodeRateLimited
	case ErrTaskFailed:
		return c == CodeTaskFailed
	case ErrResultExpired:
		return c == CodeResultExpired
	case ErrMaybeCreated:
		return e.Recovery == RecoveryUnconfirmed
	case ErrResumable:
		return e.Recovery == RecoveryResume
	case ErrResultsLost:
		return e.Recovery == RecoveryResultsLost
	}
	return false
}
