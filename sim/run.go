package sim

import (
	"container/heap"
	"slices"

	"fmt"
	"math/rand/v2"
	"time"
	"understudy/fencing"
)

// Run runs one schedule and reports what it found.
func Run(cfg Config) Result {
	cfg = cfg.withDefaults()
	w := &world{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), valid: map[int]msg{}}
	w.faultsEnd = T(cfg.Faults)
	for i := range cfg.Nodes {
		n := &node{w: w, name: fmt.Sprintf("n%d", i), ppm: w.rnd.Int64N(2*maxDriftPPM+1) - maxDriftPPM}
		w.nodes = append(w.nodes, n)
	}
	for i, n := range w.nodes {
		n.boot(i == 0)
	}
	for i := range cfg.Clients {
		c := &client{w: w, id: i}
		w.clients = append(w.clients, c)
		w.after(time.Duration(20+w.rnd.IntN(200))*time.Millisecond, c.next)
	}
	faults := cfg.Script
	if faults == nil || cfg.Random {
		faults = append(w.randomFaults(), faults...)
		w.lossy = true
	}
	for _, f := range faults {
		w.at(T(f.At), func() { w.inject(f) })
	}
	deadline := T(cfg.Faults + lease + lease/6 + cfg.Bound)
	w.at(deadline, func() { w.stop = true })
	for w.q.Len() > 0 && !w.stop {
		e := heap.Pop(&w.q).(*event)
		w.now = e.at
		e.fn()
		w.res.Events++
		w.checkAll()
		if w.allDone() && w.now > w.faultsEnd {
			break
		}
	}
	w.res.End = w.now
	if w.res.Violation == nil {
		for _, c := range w.clients {
			if !c.done {
				w.fail("I5", "session %d not served since %v (answered up to seq %d, %d more wanted after the faults) by %v; faults ended at %v", c.id, c.served, c.told, cfg.Steps, deadline, w.faultsEnd)
				break
			}
		}
	}
	return w.res
}

func (w *world) allDone() bool {
	for _, c := range w.clients {
		if !c.done {
			return false
		}
	}
	return true
}

// checkAll checks I1, I2 and I3 after an event.
func (w *world) checkAll() {
	if w.stop && w.res.Violation != nil {
		return
	}
	var holder *node
	for _, n := range w.nodes {
		if n.up && n.m.Valid(n.local()) {
			if holder != nil {
				w.fail("I1", "%s (epoch %d) and %s (epoch %d) both hold a valid lease", holder.name, holder.m.Epoch(), n.name, n.m.Epoch())
				return
			}
			holder = n
		}
	}
	claims := w.bucket.claims()
	if w.bucket.rev != w.checkedRev || len(w.stream) != w.checkedLen {
		w.revalidate(claims)
	}
	for _, c := range w.clients {
		if c.told == 0 {
			continue
		}
		if m := w.valid[c.id]; m.seq < c.told {
			w.fail("I2", "session %d was answered for seq %d; its newest valid snapshot is seq %d (stream seq %d)", c.id, c.told, m.seq, m.streamSeq)
			return
		}
	}
}

// revalidate follows the stream and the claims: the newest valid snapshot
// of every session, and I3 (valid snapshots of a session strictly
// increase). Only what is new is read unless the claims changed.
func (w *world) revalidate(claims fencing.Claims) {
	from := w.checkedLen
	if w.bucket.rev != w.checkedRev && !slices.Equal(claims, w.checkedClaims) {
		from = 0
		clear(w.valid)
	}
	w.checkedRev, w.checkedLen, w.checkedClaims = w.bucket.rev, len(w.stream), claims
	for _, m := range w.stream[from:] {
		if claims.Fenced(m.epoch, m.streamSeq) {
			continue
		}
		if p, ok := w.valid[m.session]; ok && m.seq <= p.seq {
			w.fail("I3", "session %d: valid snapshot seq %d (stream seq %d, %s epoch %d) after seq %d (stream seq %d, %s epoch %d): applied twice",
				m.session, m.seq, m.streamSeq, m.node, m.epoch, p.seq, p.streamSeq, p.node, p.epoch)
			return
		}
		w.valid[m.session] = m
	}
}
