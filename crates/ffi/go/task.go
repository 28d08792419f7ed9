package backdrop

// #include <backdrop.h>
// #include <stdlib.h>
import "C"

import (
	"runtime"
	"sync"
)

// Task is a generation task at the service: its id and the last state seen of it. It is safe
// for concurrent use: polls and waits of one task take turns, and the accessors never block on
// them. Close it when done (the task itself goes on at the service).
type Task struct {
	h       handle[*C.backdrop_task]
	cleanup runtime.Cleanup
	id      string
	// ops serializes the calls that change the C task (poll, wait) against those that read it.
	ops sync.RWMutex

	mu       sync.Mutex
	state    int32
	progress float64
	results  int
}

func newTask(ptr *C.backdrop_task) *Task {
	t := &Task{
		h: handle[*C.backdrop_task]{
			ptr:  ptr,
			free: func(p *C.backdrop_task) { C.backdrop_task_free(p) },
			what: "task",
		},
		id:       C.GoString(C.backdrop_task_id(ptr)),
		progress: -1,
	}
	t.cleanup = runtime.AddCleanup(t, func(p *C.backdrop_task) { C.backdrop_task_free(p) }, ptr)
	return t
}

// ResumeTask is a task handle for a known task id (saved before a restart): wait for it or
// download its results with any client of the key that created it.
func ResumeTask(id string) (*Task, error) {
	cid, err := cString(id, "the task id")
	if err != nil {
		return nil, err
	}
	defer freeString(cid)
	var ptr *C.backdrop_task
	if err := check(C.backdrop_task_from_id(cid, &ptr), nil); err != nil {
		return nil, err
	}
	return newTask(ptr), nil
}

// ID is the task id.
func (t *Task) ID() string { return t.id }

// State is the last data.state seen: 1 succeeded, below 0 failed (see StateMeaning), 0 before
// the first poll, otherwise running.
func (t *Task) State() int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// Progress is the last data.progress seen (0 to 100), or -1 when unknown.
func (t *Task) Progress() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.progress
}

// ResultCount is the number of result images once the task succeeded, else 0. They are
// numbered 1 to ResultCount (1 is data.image_1), as Download takes them.
func (t *Task) ResultCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.results
}

// Succeeded reports whether the last state seen is 1.
func (t *Task) Succeeded() bool { return t.State() == 1 }

// Close releases the task handle. Idempotent; a running call on the task finishes first.
func (t *Task) Close() error {
	if t.h.close() {
		t.cleanup.Stop()
	}
	return nil
}

// StateMeaning explains a task state in the spec's words.
func StateMeaning(state int32) string {
	return C.GoString(C.backdrop_task_state_meaning(C.int32_t(state)))
}

// record stores what a poll saw; results < 0 leaves the count as it is.
func (t *Task) record(state int32, progress float64, results int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state = state
	t.progress = progress
	if results >= 0 {
		t.results = results
	}
}

// mutate runs fn with the C task for a call that changes it, then records its new state.
func (t *Task) mutate(fn func(*C.backdrop_task) error) error {
	ptr, err := t.h.acquire()
	if err != nil {
		return err
	}
	defer t.h.release()
	t.ops.Lock()
	defer t.ops.Unlock()
	err = fn(ptr)
	if err == nil {
		t.record(int32(C.backdrop_task_state(ptr)), float64(C.backdrop_task_progress(ptr)),
			int(C.backdrop_task_result_count(ptr)))
	}
	runtime.KeepAlive(t)
	return err
}

// read runs fn with the C task for a call that only reads it.
func (t *Task) read(fn func(*C.backdrop_task) error) error {
	ptr, err := t.h.acquire()
	if err != nil {
		return err
	}
	defer t.h.release()
	t.ops.RLock()
	defer t.ops.RUnlock()
	err = fn(ptr)
	runtime.KeepAlive(t)
	return err
}
