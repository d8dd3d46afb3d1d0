package gateway

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// window bounds the attempts in flight to the owner, and learns what the
// owner can take: it shrinks when the owner turns a request away as busy,
// and grows back by about one for each window's worth of answers
// (additive increase, multiplicative decrease, as TCP's congestion window
// does), up to Config.MaxInFlight. Requests beyond it wait here, first
// come first served, where waiting costs nothing, instead of bouncing off
// the owner's full queue: in the overload benchmark (stop 25), at twice
// the load that saturates the machine, the owner answered 1,100 busy
// attempts a second, and goodput fell by 30%.
type window struct {
	mu       sync.Mutex
	max      float64
	limit    float64 // the current bound, windowMin..max
	inFlight int
	waiting  list.List // of chan struct{}, oldest first
	cutAt    time.Time // the last decrease
	now      func() time.Time
}

// Window tuning. A decrease is made at most once per windowCooldown, so
// that a burst of busy answers to requests sent together counts as one
// signal (TCP halves once per round trip).
const (
	windowMin      = 4
	windowCut      = 0.75
	windowCooldown = 100 * time.Millisecond
)

func newWindow(max int) *window {
	return &window{max: float64(max), limit: float64(max), now: time.Now}
}

func (w *window) bound() int { return int(w.limit) }

// take waits for a place until until() (asked only if it has to wait),
// or ctx ends, and reports whether it got one; the caller gives it back.
func (w *window) take(ctx context.Context, until func() time.Time) bool {
	w.mu.Lock()
	if w.waiting.Len() == 0 && w.inFlight < w.bound() {
		w.inFlight++
		w.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	el := w.waiting.PushBack(ch)
	w.mu.Unlock()

	left := time.Until(until())
	t := time.NewTimer(max(left, 0))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-ch:
		// Handed a place as it gave up: pass it on.
		w.inFlight--
		w.handOnLocked()
	default:
		w.waiting.Remove(el)
	}
	return false
}

// give gives a place back, with what became of the attempt: busy, the
// owner turned it away as busy; answered, the owner answered otherwise
// (neither: the attempt failed on the way, which says nothing of load).
func (w *window) give(busy, answered bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight--
	switch {
	case busy:
		if now := w.now(); now.Sub(w.cutAt) >= windowCooldown {
			w.limit = max(windowMin, w.limit*windowCut)
			w.cutAt = now
		}
	case answered:
		w.limit = min(w.max, w.limit+1/w.limit)
	}
	w.handOnLocked()
}

// handOnLocked gives free places to the oldest waiters.
func (w *window) handOnLocked() {
	for w.waiting.Len() > 0 && w.inFlight < w.bound() {
		ch := w.waiting.Remove(w.waiting.Front()).(chan struct{})
		w.inFlight++
		close(ch)
	}
}

// state returns the current bound, the attempts in flight and the requests
// waiting, for metrics and tests.
func (w *window) state() (limit, inFlight, waiting int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bound(), w.inFlight, w.waiting.Len()
}
