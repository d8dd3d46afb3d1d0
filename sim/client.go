package sim

import (
	"time"

	"understudy/group/protocol"
)

// client is a person at a browser: one session, interactions one at a
// time, and a memory of what it was told.
type client struct {
	w       *world
	id      int
	told    uint64 // the newest interaction it was answered for
	done    bool
	attempt int    // the gateway's current attempt; older answers are dropped
	served  T      // when it was last answered
	after   uint64 // the seq to reach once faults have ended
}

// gateway routes to the owner in the bucket and retries what can be
// retried, signalling a failover when the owner does not answer.
type gateway struct {
	lastSignal T
	signals    protocol.SignalID
}

func (c *client) next() {
	w := c.w
	// A client goes on while faults happen, then for Steps more
	// interactions: I5 is that it gets them.
	if w.now >= w.faultsEnd {
		if c.after == 0 {
			c.after = c.told + uint64(w.cfg.Steps)
		}
		if c.told >= c.after {
			c.done = true
			return
		}
	}
	c.attempt++
	c.send(c.attempt)
}

// send sends one attempt to the owner of the moment.
func (c *client) send(attempt int) {
	w := c.w
	owner := w.owner()
	if owner == nil {
		w.after(20*time.Millisecond, func() { c.send(attempt) })
		return
	}
	answered := false
	retry := func(after time.Duration) {
		if answered {
			return
		}
		answered = true
		c.attempt++
		a := c.attempt
		w.after(after, func() { c.send(a) })
	}
	w.after(requestLimit, func() {
		if !answered && c.attempt == attempt {
			w.signal(owner.name)
			retry(0)
		}
	})
	seq := c.told
	w.after(w.delay(), func() {
		owner.onRequest(&request{session: c.id, seq: seq, reply: func(status int, told uint64, why string) {
			w.after(w.delay(), func() {
				if answered || c.attempt != attempt {
					return // abandoned: the gateway retried elsewhere
				}
				switch status {
				case ok200:
					answered = true
					c.answered(told, owner.name, why)
					w.after(time.Duration(2+w.rnd.IntN(20))*time.Millisecond, c.next)
				case unavailable:
					if why == "lease" || why == "fenced" {
						w.signal(owner.name)
					}
					retry(time.Duration(5+w.rnd.IntN(40)) * time.Millisecond)
				default:
					answered = true
					c.done = true
					w.fail("I4", "session %d (answered up to seq %d) got %d %s from %s", c.id, c.told, status, why, owner.name)
				}
			})
		}})
	})
}

func (c *client) answered(told uint64, node, why string) {
	w := c.w
	w.res.Answers++
	c.served = w.now
	if told < c.told {
		w.fail("I2", "session %d: told seq %d, then %s shows seq %d (%s)", c.id, c.told, node, told, why)
		return
	}
	c.told = told // checkAll holds it against the newest valid snapshot
}

// onRequest delivers a request to a node that may be down or paused.
func (n *node) onRequest(r *request) {
	if !n.up {
		r.reply(unavailable, 0, "lease") // connection refused
		return
	}
	inc := n.inc
	reply := r.reply
	r.reply = func(status int, told uint64, why string) {
		if n.inc == inc {
			reply(status, told, why)
		}
	}
	n.on(0, func() { n.serve(r) })
}

// owner is the node the bucket names as owner (a gateway's view).
func (w *world) owner() *node {
	if !w.bucket.exists {
		return nil
	}
	return w.node(w.bucket.cur.Owner)
}

// signal asks every backup to take over from failed, at most every 100 ms.
func (w *world) signal(failed string) {
	if w.now-w.gw.lastSignal < T(100*time.Millisecond) && w.gw.lastSignal != 0 {
		return
	}
	w.gw.lastSignal = w.now
	w.gw.signals++
	id := w.gw.signals
	req := protocol.FailoverRequest{Group: "g", Failed: failed, Reason: protocol.ReasonUnreachable}
	for _, n := range w.nodes {
		if n.up && n.name != failed {
			n.on(w.delay(), func() { n.handle(n.m.Signal(n.local(), id, req, true)) })
		}
	}
}
