package group

import "sync"

// runner runs functions one at a time, in the order given, on a goroutine
// of its own: the member's hooks, so that none of them blocks the
// goroutine that feeds the core (a demotion that waits for requests in
// flight must not freeze lease decisions meanwhile).
type runner struct {
	mu     sync.Mutex
	queue  []func()
	ready  chan struct{}
	closed bool
}

func newRunner(wg *sync.WaitGroup) *runner {
	r := &runner{ready: make(chan struct{}, 1)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.loop()
	}()
	return r
}

// run queues f. It never blocks.
func (r *runner) run(f func()) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.queue = append(r.queue, f)
	r.mu.Unlock()
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// close stops the runner once the queue is empty.
func (r *runner) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

func (r *runner) loop() {
	for range r.ready {
		for {
			r.mu.Lock()
			if len(r.queue) == 0 {
				closed := r.closed
				r.mu.Unlock()
				if closed {
					return
				}
				break
			}
			f := r.queue[0]
			r.queue = r.queue[1:]
			r.mu.Unlock()
			f()
		}
	}
}
