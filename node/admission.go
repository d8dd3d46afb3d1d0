package node

import (
	"sync/atomic"
	"time"
)

// admission bounds the interactions a primary works on at once. Past the
// bound an interaction waits, in a queue of bounded length, for at most
// its wait; then it is turned away (503 busy) before anything is applied,
// and the gateway tries it again within its budget. Offered load beyond
// what the machine can do so waits at the door instead of in the node's
// goroutines, NATS's buffers and the CPU's run queue, where it would slow
// every interaction and, worst, the lease.
type admission struct {
	slots    chan struct{} // nil: no bound
	wait     time.Duration
	waiting  atomic.Int64
	maxQueue int64
}

// admissionQueue is how many requests, per place, may wait for one. A
// waiting request costs a goroutine; one turned away comes back from the
// gateway, and a thousand clients bouncing off a short queue every few
// milliseconds spent the CPU the requests in flight needed (throughput
// fell to a third).
const admissionQueue = 16

func newAdmission(maxInFlight int, wait time.Duration) *admission {
	a := &admission{wait: wait, maxQueue: int64(admissionQueue * maxInFlight)}
	if maxInFlight > 0 {
		a.slots = make(chan struct{}, maxInFlight)
	}
	return a
}

// enter takes a place, waiting for one up to the admission wait unless the
// queue is full. It reports whether it got one and how long it waited;
// every true must be followed by leave.
func (a *admission) enter(done <-chan struct{}) (bool, time.Duration) {
	if a.slots == nil {
		return true, 0
	}
	select {
	case a.slots <- struct{}{}:
		return true, 0
	default:
	}
	if a.waiting.Add(1) > a.maxQueue {
		a.waiting.Add(-1)
		return false, 0
	}
	defer a.waiting.Add(-1)
	start := time.Now()
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return true, time.Since(start)
	case <-t.C:
		return false, time.Since(start)
	case <-done:
		return false, time.Since(start)
	}
}

func (a *admission) leave() {
	if a.slots != nil {
		<-a.slots
	}
}

// inFlight returns how many interactions hold a place.
func (a *admission) inFlight() int { return len(a.slots) }
