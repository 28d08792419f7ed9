package backdrop

import (
	"sync"
)

// handle owns one C object: it counts the calls using it, and frees it once it is closed and no
// call uses it any more, so Close never waits for a running call and never frees under one.
type handle[P comparable] struct {
	mu     sync.Mutex
	ptr    P // a C pointer; the zero value once freed
	users  int
	closed bool
	free   func(P)
	what   string
}

// acquire returns the C object for one call, or the closed error; release must follow.
func (h *handle[P]) acquire() (P, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var zero P
	if h.closed || h.ptr == zero {
		return zero, closedError(h.what)
	}
	h.users++
	return h.ptr, nil
}

// release ends a call; the last call after Close frees the object.
func (h *handle[P]) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users--
	h.freeIfUnused()
}

// close marks the object closed; it is freed now or when its last call ends. Idempotent.
// Reports whether this call closed it.
func (h *handle[P]) close() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.closed = true
	h.freeIfUnused()
	return true
}

func (h *handle[P]) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *handle[P]) freeIfUnused() {
	var zero P
	if h.closed && h.users == 0 && h.ptr != zero {
		h.free(h.ptr)
		h.ptr = zero
	}
}
