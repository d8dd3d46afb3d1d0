package sim

import (
	"errors"
	"fmt"
	"time"

	"understudy/fencing"
	"understudy/group/protocol"
)

// node is one member of the group with the node's side of a session: what
// it holds in memory, its copy of the stream, its publishes.
type node struct {
	w    *world
	name string

	up          bool
	inc         int // incarnation: a crash ends every event aimed at the old one
	pausedUntil T
	stallUntil  T     // its publishes are held in the network until then
	ppm         int64 // clock-rate drift, parts per million
	start       T     // when this incarnation's clock started
	base        protocol.Mono

	m       *protocol.Member
	tickGen int
	nextOp  protocol.OpID
	release protocol.OpID // the Release waiting, 0 if none
	claimOp protocol.OpID // the startup Claim waiting, 0 if none
	relEp   uint64
	reports map[attempt]bool // write attempts already reported
	drains  []protocol.Drain

	serving bool
	epoch   uint64
	claims  fencing.Claims

	mem         map[int]*memory
	held        map[int]msg // the copy: per session, the snapshot it holds
	paused      bool        // the copy consumes nothing: the node serves (it owns what it stores)
	delivered   int         // the copy holds stream[:delivered]
	deliverAt   T           // the last delivery scheduled
	quarantined map[int]bool
}

type attempt struct {
	id protocol.WriteID
	n  int
}

// memory is a session as the node holds it.
type memory struct {
	seq    uint64
	epoch  uint64 // the epoch seq is the truth at
	track  uint64 // the stream sequence of the session's newest message, as known
	unsure bool   // a publish's outcome is unknown: read the stream first
	busy   bool   // a request holds the session
	queue  []*request
}

// local is the node's monotonic clock now.
func (n *node) local() protocol.Mono {
	d := int64(n.w.now - n.start)
	return n.base + protocol.Mono(d+d/1_000_000*n.ppm+(d%1_000_000)*n.ppm/1_000_000)
}

// global converts a time on the node's clock to global time.
func (n *node) global(l protocol.Mono) T {
	d := int64(l - n.base)
	return n.start + T(d/(1_000_000+n.ppm)*1_000_000+(d%(1_000_000+n.ppm))*1_000_000/(1_000_000+n.ppm))
}

// on runs fn on the node after d: not while it is paused (then at its
// resumption), never once it crashed.
func (n *node) on(d time.Duration, fn func()) {
	inc := n.inc
	var run func()
	run = func() {
		if !n.up || n.inc != inc {
			return
		}
		if n.w.now < n.pausedUntil {
			n.w.at(n.pausedUntil, run)
			return
		}
		fn()
		n.schedule()
	}
	n.w.after(d, run)
}

func (n *node) boot(claim bool) {
	w := n.w
	n.up, n.inc = true, n.inc+1
	n.start, n.base = w.now, protocol.Mono(w.rnd.Int64N(int64(time.Hour)))
	n.m = protocol.New(protocol.Config{Node: n.name, Address: n.name, Lease: lease, Bugs: w.cfg.Bugs})
	n.reports = map[attempt]bool{}
	n.serving, n.paused, n.epoch, n.claims, n.release, n.claimOp, n.drains = false, false, 0, nil, 0, 0, nil
	n.mem, n.held, n.quarantined = map[int]*memory{}, map[int]msg{}, map[int]bool{}
	n.delivered, n.deliverAt = 0, w.now
	// The watch's initial state, then the copy's catch-up.
	n.on(w.delay(), func() {
		if w.bucket.exists {
			n.handle(n.m.Observe(n.local(), w.bucket.cur, true))
		}
		n.handle(n.m.Load(n.local()))
		if claim {
			n.claim()
		}
	})
	n.deliver(len(w.stream))
}

// pauseAfter is how long after its promotion a primary's copy pauses:
// the background work of node.followRole (a fixed time, so that the
// schedules' random draws are those they were before the copy paused).
const pauseAfter = time.Millisecond

func (n *node) crash() {
	n.up = false
	n.inc++
	n.w.trace("%s crashed", n.name)
}

// claim is a startup claim: the node was started as primary. A claim
// that fails for another reason than a live owner ends the process, and
// its supervisor starts it again: here, it claims again after a pause.
func (n *node) claim() {
	n.nextOp++
	n.claimOp = n.nextOp
	n.handle(n.m.Claim(n.local(), n.claimOp))
}

// schedule asks for the core's next tick.
func (n *node) schedule() {
	if !n.up {
		return
	}
	next, ok := n.m.Next()
	if !ok {
		return
	}
	n.tickGen++
	gen := n.tickGen
	at := max(n.global(next), n.w.now)
	inc := n.inc
	var run func()
	run = func() {
		if !n.up || n.inc != inc || gen != n.tickGen {
			return
		}
		if n.w.now < n.pausedUntil {
			n.w.at(n.pausedUntil, run)
			return
		}
		n.handle(n.m.Tick(n.local()))
		n.schedule()
	}
	n.w.at(at+1, run)
}

// handle carries out the core's actions.
func (n *node) handle(acts []protocol.Action) {
	w := n.w
	for _, a := range acts {
		if w.cfg.Trace != nil {
			switch a.(type) {
			case protocol.ReadLastSeq, protocol.Drain, protocol.Done, protocol.Reply, protocol.Ping:
				w.trace("%s: %T %+v", n.name, a, a)
			}
		}
		switch a := a.(type) {
		case protocol.Write:
			n.send(a)
		case protocol.Ping:
			target := w.node(a.Node)
			n.on(w.delay(), func() {
				r := protocol.Answered
				switch {
				case target == nil || !target.up:
					r = protocol.NoResponders
				case w.now < target.pausedUntil:
					r = protocol.Silent
				}
				n.handle(n.m.PingDone(n.local(), a.Takeover, r))
			})
		case protocol.ReadLastSeq:
			n.on(w.delay(), func() {
				seq := uint64(len(w.stream))
				var err error
				if w.now < w.noLeader {
					err = errTransient
				}
				n.on(w.delay(), func() { n.handle(n.m.LastSeqDone(n.local(), a.Takeover, seq, err)) })
			})
		case protocol.Drain:
			n.drains = append(n.drains, a)
			n.drained()
		case protocol.Promote:
			n.serving, n.epoch = true, a.Epoch
			// The primary's copy pauses a moment later (node.followRole
			// runs in the background): what is delivered meanwhile is held.
			inc := n.inc
			n.on(pauseAfter, func() {
				if n.inc == inc && n.serving {
					n.paused = true
				}
			})
			n.claims = a.Claims
			w.res.Failovers++
			w.trace("%s promoted at epoch %d, fence %d", n.name, a.Epoch, a.Fence)
			n.on(w.delay(), func() { n.handle(n.m.PromoteDone(n.local(), len(n.held), nil)) })
		case protocol.Demote:
			n.serving, n.paused = false, false
			n.deliver(len(w.stream)) // the copy resumes with a catch-up
			w.trace("%s demoted: %v", n.name, a.Err)
		case protocol.ClaimsChanged:
			n.claims = a.Claims
		case protocol.Done:
			if a.Op == n.claimOp && n.claimOp != 0 {
				n.claimOp = 0
				if a.Err != nil && !errors.Is(a.Err, protocol.ErrHeld) {
					n.on(200*time.Millisecond, n.claim)
				}
			}
			if a.Op == n.release && n.release != 0 {
				n.release = 0
				if a.Err == nil {
					w.checkReleased(n.name, n.relEp)
				}
			}
		case protocol.Reply:
		}
	}
}

// send carries one attempt of a bucket write: it reaches the bucket after
// a hop (or is lost), its answer comes back after another (or is lost),
// and the attempt times out unless answered first.
func (n *node) send(a protocol.Write) {
	w := n.w
	if a.Kind != protocol.KindRenew {
		w.trace("%s sends %s attempt %d over rev %d", n.name, a.Kind, a.Attempt, a.Rev)
	}
	key := attempt{a.ID, a.Attempt}
	report := func(r protocol.WriteResult) {
		if n.reports[key] {
			return
		}
		n.reports[key] = true
		if a.Kind != protocol.KindRenew {
			w.trace("%s: %s attempt %d: %s (current rev %d owner %s epoch %d released %v)", n.name, a.Kind, a.Attempt, r.Outcome, r.Current.Revision, r.Current.Owner, r.Current.Epoch, r.Current.Released)
		}
		n.handle(n.m.WriteDone(n.local(), r))
	}
	n.on(attemptLimit, func() { report(protocol.WriteResult{ID: a.ID, Outcome: protocol.Unknown}) })
	if w.lost() {
		return
	}
	inc := n.inc
	w.after(w.delay(), func() {
		w.leader(func() {
			e := a.Entry
			landed, cur, exists := w.bucket.cas(e, a.Rev)
			if landed {
				w.trace("%s %s landed at rev %d (epoch %d, released %v)", n.name, a.Kind, cur.Revision, cur.Epoch, cur.Released)
				w.watch(cur)
			}
			if w.lost() || n.inc != inc {
				return
			}
			n.on(w.delay(), func() {
				if landed {
					report(protocol.WriteResult{ID: a.ID, Outcome: protocol.Landed, Rev: cur.Revision})
					return
				}
				report(protocol.WriteResult{ID: a.ID, Outcome: protocol.Conflict, Current: cur, Exists: exists})
			})
		})
	})
}

// watch delivers a new revision to every member, late, sometimes twice,
// sometimes with an older revision delivered again after it.
func (w *world) watch(e protocol.Entry) {
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		deliver := func(e protocol.Entry) {
			n.on(w.delay(), func() { n.handle(n.m.Observe(n.local(), e, true)) })
		}
		deliver(e)
		if w.rnd.IntN(20) == 0 {
			deliver(e)
		}
		if len(w.bucket.history) > 1 && w.rnd.IntN(20) == 0 {
			deliver(w.bucket.history[w.rnd.IntN(len(w.bucket.history)-1)])
		}
	}
}

// deliver schedules the copy's delivery of the stream up to upTo.
func (n *node) deliver(upTo int) {
	w := n.w
	at := max(n.deliverAt, w.now+T(w.delay()))
	n.deliverAt = at
	n.on(time.Duration(at-w.now), func() {
		if n.paused {
			return // resumed at demotion, with a delivery of its own
		}
		for n.delivered < upTo && n.delivered < len(w.stream) {
			m := w.stream[n.delivered]
			n.delivered++
			// A snapshot fenced on arrival is not held: the store keeps
			// the valid one below it.
			if !n.claims.Fenced(m.epoch, m.streamSeq) {
				n.held[m.session] = m
			}
		}
		n.drained()
	})
}

// own holds a message the node stored itself, as the publisher hands it
// to a paused copy (subscriber.Own): only if it is newer than what is held.
func (n *node) own(m msg) {
	if cur, ok := n.held[m.session]; ok && cur.streamSeq >= m.streamSeq {
		return
	}
	if !n.claims.Fenced(m.epoch, m.streamSeq) {
		n.held[m.session] = m
	}
}

func (n *node) drained() {
	keep := n.drains[:0]
	var done []protocol.Drain
	for _, d := range n.drains {
		if uint64(n.delivered) >= d.Seq {
			done = append(done, d)
		} else {
			keep = append(keep, d)
		}
	}
	n.drains = keep
	for _, d := range done {
		n.w.trace("%s drained to %d", n.name, d.Seq)
		n.handle(n.m.DrainDone(n.local(), d.Takeover, nil))
	}
}

// Release hands the group over, as a node does at SIGTERM.
func (n *node) releaseGroup() {
	if n.m.Role() != protocol.Primary || n.release != 0 {
		return
	}
	n.nextOp++
	n.release, n.relEp = n.nextOp, n.m.Epoch()
	n.w.trace("%s releases epoch %d", n.name, n.relEp)
	n.handle(n.m.Release(n.local(), n.release))
}

func (w *world) checkReleased(name string, epoch uint64) {
	for _, e := range w.bucket.history {
		if e.Owner == name && e.Epoch == epoch && e.Released {
			return
		}
	}
	w.fail("I6", "%s was told its release of epoch %d landed; the bucket never held it released", name, epoch)
}

func (w *world) node(name string) *node {
	for _, n := range w.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

var errTransient = errors.New("no stream leader")

func (n *node) String() string { return fmt.Sprintf("%s(epoch %d)", n.name, n.epoch) }
