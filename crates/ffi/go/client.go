package backdrop

// #include <backdrop.h>
// #include <stdlib.h>
//
// extern uint32_t backdropGoProgress(uintptr_t handle, backdrop_task *task);
//
// /* The progress callback: hands the cgo.Handle and the task view to Go. */
// static uint32_t backdrop_go_trampoline(void *userdata, const backdrop_task *task) {
//     return backdropGoProgress((uintptr_t)userdata, (backdrop_task *)task);
// }
//
// static backdrop_result backdrop_go_wait(const backdrop_client *client, backdrop_task *task,
//                                         uint32_t timeout_ms, uintptr_t handle,
//                                         backdrop_error **error_out) {
//     return backdrop_client_wait(client, task, timeout_ms, backdrop_go_trampoline,
//                                 (void *)handle, error_out);
// }
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/cgo"
	"strconv"
	"time"
	"unsafe"
)

// Config configures a Client. Zero values mean the service's defaults.
type Config struct {
	// APIKey is the PicWish API key (required). It never appears in an error.
	APIKey string
	// BaseURL is the service's base URL (default https://techhk.aoscdn.com).
	BaseURL string
	// QPS is the key's requests per second (default 2). Every call of the client, from every
	// goroutine, shares this budget.
	QPS uint32
	// ConnectTimeout, RequestTimeout and DownloadTimeout bound one connection attempt, one API
	// request and one result download (defaults 10 s, 120 s, 120 s).
	ConnectTimeout  time.Duration
	RequestTimeout  time.Duration
	DownloadTimeout time.Duration
	// MaxAttempts, InitialBackoff and MaxBackoff shape the retries of a failed request
	// (defaults 6, 500 ms, 20 s); all three are used when MaxAttempts is not 0.
	MaxAttempts    uint32
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// PollInterval is the time between two polls of Wait under PollDocumented, and the longest
	// gap between polls under PollAdaptive while the budget is idle (default 1 s).
	PollInterval time.Duration
	// PollPolicy is how Wait plans its polls (default PollAdaptive).
	PollPolicy PollPolicy
	// MaxCredits caps the credits the client may spend (0: no cap). A create whose most
	// possible cost would pass it is not sent: CreateTask fails with ErrCreditCap. Refused
	// creates and failed tasks are refunded; see CreditsSpent.
	MaxCredits uint64
}

// PollPolicy is how Wait plans its polls.
type PollPolicy uint32

const (
	// PollAdaptive plans polls from what is known (processing times seen, state, progress) so
	// that they land soon after a task is likely done: the key's budget goes further.
	PollAdaptive PollPolicy = C.BACKDROP_POLL_ADAPTIVE
	// PollDocumented polls every PollInterval, as the spec's flow does.
	PollDocumented PollPolicy = C.BACKDROP_POLL_DOCUMENTED
)

// ConfigFromEnv reads PICWISH_API_KEY (required), PICWISH_BASE_URL and PICWISH_QPS.
func ConfigFromEnv() (Config, error) {
	cfg := Config{APIKey: os.Getenv("PICWISH_API_KEY"), BaseURL: os.Getenv("PICWISH_BASE_URL")}
	if cfg.APIKey == "" {
		return cfg, &Error{Code: CodeConfig, Message: "PICWISH_API_KEY is not set"}
	}
	if qps := os.Getenv("PICWISH_QPS"); qps != "" {
		n, err := strconv.ParseUint(qps, 10, 32)
		if err != nil || n == 0 {
			return cfg, &Error{Code: CodeConfig, Message: "PICWISH_QPS=" + qps + " is not a positive whole number"}
		}
		cfg.QPS = uint32(n)
	}
	return cfg, nil
}

// Client is a client of the Generate Background API, bound to one API key. It is safe for
// concurrent use by many goroutines; all of its calls share one rate limit and one connection
// pool. Close it when done.
type Client struct {
	h       handle[*C.backdrop_client]
	cleanup runtime.Cleanup
}

// NewClient checks cfg and starts a client (with its own two worker threads).
func NewClient(cfg Config) (*Client, error) {
	key, err := cString(cfg.APIKey, "the API key")
	if err != nil {
		return nil, err
	}
	defer freeString(key)
	var builder *C.backdrop_client_builder
	if err := check(C.backdrop_client_builder_new(key, &builder), nil); err != nil {
		return nil, err
	}
	defer C.backdrop_client_builder_free(builder)
	if cfg.BaseURL != "" {
		url, err := cString(cfg.BaseURL, "the base URL")
		if err != nil {
			return nil, err
		}
		code := C.backdrop_client_builder_set_base_url(builder, url)
		freeString(url)
		if err := check(code, nil); err != nil {
			return nil, err
		}
	}
	settings := []struct {
		set bool
		fn  func() C.backdrop_result
	}{
		{cfg.QPS != 0, func() C.backdrop_result { return C.backdrop_client_builder_set_qps(builder, C.uint32_t(cfg.QPS)) }},
		{cfg.ConnectTimeout != 0, func() C.backdrop_result {
			return C.backdrop_client_builder_set_connect_timeout_ms(builder, millis(cfg.ConnectTimeout))
		}},
		{cfg.RequestTimeout != 0, func() C.backdrop_result {
			return C.backdrop_client_builder_set_request_timeout_ms(builder, millis(cfg.RequestTimeout))
		}},
		{cfg.DownloadTimeout != 0, func() C.backdrop_result {
			return C.backdrop_client_builder_set_download_timeout_ms(builder, millis(cfg.DownloadTimeout))
		}},
		{cfg.MaxAttempts != 0, func() C.backdrop_result {
			return C.backdrop_client_builder_set_retry(builder, C.uint32_t(cfg.MaxAttempts),
				millis(cfg.InitialBackoff), millis(cfg.MaxBackoff))
		}},
		{cfg.PollInterval != 0, func() C.backdrop_result {
			return C.backdrop_client_builder_set_poll_interval_ms(builder, millis(cfg.PollInterval))
		}},
		{cfg.PollPolicy != PollAdaptive, func() C.backdrop_result {
			return C.backdrop_client_builder_set_poll_policy(builder, C.uint32_t(cfg.PollPolicy))
		}},
		{cfg.MaxCredits != 0, func() C.backdrop_result {
			return C.backdrop_client_builder_set_max_credits(builder, C.uint64_t(cfg.MaxCredits))
		}},
	}
	for _, setting := range settings {
		if setting.set {
			if err := check(setting.fn(), nil); err != nil {
				return nil, err
			}
		}
	}
	var ptr *C.backdrop_client
	var detail *C.backdrop_error
	code := C.backdrop_client_builder_build(builder, &ptr, &detail)
	if err := check(code, detail); err != nil {
		return nil, err
	}
	c := &Client{h: handle[*C.backdrop_client]{
		ptr:  ptr,
		free: func(p *C.backdrop_client) { C.backdrop_client_free(p) },
		what: "client",
	}}
	c.cleanup = runtime.AddCleanup(c, func(p *C.backdrop_client) { C.backdrop_client_free(p) }, ptr)
	return c, nil
}

// Close releases the client. Idempotent and safe to call concurrently with other calls: a
// running call finishes (a running Wait stops at its next poll with ErrCanceled), later calls
// return ErrClosed, and the C client is freed when its last call ends.
func (c *Client) Close() error {
	if c.h.close() {
		c.cleanup.Stop()
	}
	return nil
}

// use runs fn with the C client, keeping it alive and unfreed for the duration.
func (c *Client) use(fn func(*C.backdrop_client) error) error {
	ptr, err := c.h.acquire()
	if err != nil {
		return err
	}
	defer c.h.release()
	err = fn(ptr)
	runtime.KeepAlive(c)
	return err
}

// RequestsSent is the number of API requests the client has sent (retries included).
func (c *Client) RequestsSent() uint64 {
	var sent uint64
	_ = c.use(func(p *C.backdrop_client) error {
		sent = uint64(C.backdrop_client_requests_sent(p))
		return nil
	})
	return sent
}

// CreditsSpent is what the client has spent and reserved under its cap (Config.MaxCredits):
// its succeeded tasks' charges and the most its running or unconfirmed creates can cost. An
// error (ErrUsage) when the client has no cap.
func (c *Client) CreditsSpent() (uint64, error) {
	var spent C.uint64_t
	err := c.use(func(p *C.backdrop_client) error {
		return check(C.backdrop_client_credits_spent(p, &spent), nil)
	})
	return uint64(spent), err
}

// CreateTask validates req locally (refusing, at no cost, what the service would refuse) and
// creates a task for it. The returned task must be closed when done.
func (c *Client) CreateTask(req Request) (*Task, error) {
	var task *Task
	err := c.use(func(p *C.backdrop_client) error {
		creq, err := req.toC()
		if err != nil {
			return err
		}
		defer C.backdrop_request_free(creq)
		var ptr *C.backdrop_task
		var detail *C.backdrop_error
		code := C.backdrop_client_create_task(p, creq, &ptr, &detail)
		if err := check(code, detail); err != nil {
			return err
		}
		task = newTask(ptr)
		return nil
	})
	return task, err
}

// Poll queries the task once and records its state, progress and results. A failed task is
// not an error here: read t.State().
func (c *Client) Poll(t *Task) error {
	return c.use(func(p *C.backdrop_client) error {
		return t.mutate(func(tp *C.backdrop_task) error {
			var detail *C.backdrop_error
			code := C.backdrop_client_poll(p, tp, &detail)
			return check(code, detail)
		})
	})
}

// maxWait is the spec's limit on waiting for one task, which the library applies.
const maxWait = 300 * time.Second

// Progress is one poll's view of a task, given to the progress function of Wait.
type Progress struct {
	TaskID string
	// State is data.state: 1 succeeded, below 0 failed, otherwise running.
	State int32
	// Percent is data.progress (0 to 100), or -1 when the service reported none.
	Percent float64
}

// waitState is what the progress callback needs, reached through a cgo.Handle.
type waitState struct {
	ctx        context.Context
	client     *Client
	task       *Task
	onProgress func(Progress)
	panicked   any
	stoppedBy  error
}

// Wait polls the task until it succeeds, fails or runs out of time, calling onProgress (which
// may be nil) after every poll, on the calling goroutine.
//
// The context bounds the wait: its deadline is the wait's timeout (without one, the spec's
// limit of 300 s applies), and its cancellation stops the wait at the next poll. The error then
// matches ErrCanceled (or ErrTimeout) and the context's error. Closing the client stops a wait
// at its next poll too. A panic in onProgress stops the wait and is re-raised here.
func (c *Client) Wait(ctx context.Context, t *Task, onProgress func(Progress)) error {
	if err := ctx.Err(); err != nil {
		return &Error{Code: CodeCancelled, Message: "the context ended before the wait", TaskID: t.ID(),
			Recovery: RecoveryResume, cause: err}
	}
	// The context's deadline is the wait's timeout when it comes before the spec's limit of
	// 300 s (timeout 0), which the library applies anyway.
	var timeout C.uint32_t
	if deadline, ok := ctx.Deadline(); ok {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return &Error{Code: CodeTimeout, Message: "the context's deadline passed before the wait",
				TaskID: t.ID(), Recovery: RecoveryResume, cause: context.DeadlineExceeded}
		}
		if remaining < maxWait {
			timeout = millis(remaining)
			if timeout == 0 {
				timeout = 1
			}
		}
	}
	state := &waitState{ctx: ctx, client: c, task: t, onProgress: onProgress}
	h := cgo.NewHandle(state)
	defer h.Delete()
	err := c.use(func(p *C.backdrop_client) error {
		return t.mutate(func(tp *C.backdrop_task) error {
			var detail *C.backdrop_error
			code := C.backdrop_go_wait(p, tp, timeout, C.uintptr_t(h), &detail)
			return check(code, detail)
		})
	})
	if state.panicked != nil {
		panic(state.panicked)
	}
	var e *Error
	if errors.As(err, &e) && e.cause == nil {
		switch {
		case e.Code == CodeCancelled && state.stoppedBy != nil:
			e.cause = state.stoppedBy
		case e.Code == CodeTimeout && ctx.Err() != nil:
			e.cause = ctx.Err()
		case e.Code == CodeTimeout && timeout != 0:
			// The library stops when the next poll would come after the deadline, so the
			// context may not have ended yet: the deadline was the cause all the same.
			e.cause = context.DeadlineExceeded
		}
	}
	return err
}

//export backdropGoProgress
func backdropGoProgress(userdata C.uintptr_t, view *C.backdrop_task) (action C.uint32_t) {
	state, ok := cgo.Handle(userdata).Value().(*waitState)
	if !ok {
		return C.BACKDROP_PROGRESS_CANCEL
	}
	// No Go panic may unwind through the C frames: keep it and cancel the wait.
	defer func() {
		if r := recover(); r != nil {
			state.panicked = r
			action = C.BACKDROP_PROGRESS_CANCEL
		}
	}()
	p := Progress{
		TaskID:  C.GoString(C.backdrop_task_id(view)),
		State:   int32(C.backdrop_task_state(view)),
		Percent: float64(C.backdrop_task_progress(view)),
	}
	state.task.record(p.State, p.Percent, -1)
	if state.onProgress != nil {
		state.onProgress(p)
	}
	if err := state.ctx.Err(); err != nil {
		state.stoppedBy = err
		return C.BACKDROP_PROGRESS_CANCEL
	}
	if state.client.h.isClosed() {
		state.stoppedBy = ErrClosed
		return C.BACKDROP_PROGRESS_CANCEL
	}
	return C.BACKDROP_PROGRESS_CONTINUE
}

// numberOutOfRange is the error for a result number below 1, refused before the library
// sees it (a negative int has no size_t).
func numberOutOfRange(number int) error {
	return &Error{Code: CodeResultNumberOutOfRange, Message: fmt.Sprintf(
		"result number %d is out of range: results are numbered from 1 (data.image_1) to the task's ResultCount", number)}
}

// Download downloads result image number of a succeeded task and returns the image file's
// bytes (a JPEG, PNG or WebP file). Results are numbered from 1, as the service's fields: 1 is
// data.image_1, 2 is data.image_2, up to t.ResultCount().
func (c *Client) Download(t *Task, number int) ([]byte, error) {
	if number < 1 {
		return nil, numberOutOfRange(number)
	}
	var out []byte
	err := c.use(func(p *C.backdrop_client) error {
		return t.read(func(tp *C.backdrop_task) error {
			var bytes *C.backdrop_bytes
			var detail *C.backdrop_error
			code := C.backdrop_client_download(p, tp, C.size_t(number), &bytes, &detail)
			if err := check(code, detail); err != nil {
				return err
			}
			defer C.backdrop_bytes_free(bytes)
			n := int(C.backdrop_bytes_len(bytes))
			out = make([]byte, n)
			if n > 0 {
				copy(out, unsafe.Slice((*byte)(unsafe.Pointer(C.backdrop_bytes_data(bytes))), n))
			}
			return nil
		})
	})
	return out, err
}

// DownloadToFile downloads result image number (1 or 2) of a succeeded task into the file at
// path, through a temporary file and a rename (path never holds a partial image).
func (c *Client) DownloadToFile(t *Task, number int, path string) error {
	if number < 1 {
		return numberOutOfRange(number)
	}
	cpath, err := cString(path, "the path")
	if err != nil {
		return err
	}
	defer freeString(cpath)
	return c.use(func(p *C.backdrop_client) error {
		return t.read(func(tp *C.backdrop_task) error {
			var detail *C.backdrop_error
			code := C.backdrop_client_download_to_file(p, tp, C.size_t(number), cpath, &detail)
			return check(code, detail)
		})
	})
}
