package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"time"

	"understudy/fencing"
	"understudy/group/protocol"
	"understudy/internal/bugs"
)

// T is global simulated time, in nanoseconds from the start of a run.
type T int64

func (t T) String() string { return time.Duration(t).String() }

// Config shapes a run.
type Config struct {
	Seed     uint64
	Nodes    int           // members of the group; default 3
	Clients  int           // sessions, one client each; default 4
	Steps    int           // interactions per session once faults end; default 3
	Faults   time.Duration // faults happen in [0, Faults); default 1.5s
	Injuries int           // random faults; default 2 to 9, by the seed
	// Bound is what I5 allows beyond the lease and the margin for every
	// client to be served again once faults stop.
	Bound time.Duration
	Bugs  bugs.Set
	// Script, when set, replaces the random faults (see ParseScenario),
	// unless Random is set too.
	Script []Fault
	Random bool
	// Trace receives a line per notable event, for scripted scenarios.
	Trace func(string)
}

func (c Config) withDefaults() Config {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Clients == 0 {
		c.Clients = 3
	}
	if c.Steps == 0 {
		c.Steps = 3
	}
	if c.Faults == 0 {
		c.Faults = 1500 * time.Millisecond
	}
	if c.Bound == 0 {
		c.Bound = 4 * time.Second
	}
	return c
}

// Protocol timings: the defaults of a deployment, scaled as the tests'.
const (
	lease        = 300 * time.Millisecond
	attemptLimit = 150 * time.Millisecond // a bucket write's attempt timeout
	publishLimit = 500 * time.Millisecond // a publish's timeout
	requestLimit = time.Second            // a gateway's attempt timeout
	maxDriftPPM  = 20_000                 // 2%: well inside the margin of lease/6
)

// Violation is an invariant that failed.
type Violation struct {
	Invariant string // "I1" ... "I6"
	At        T
	What      string
}

func (v *Violation) Error() string { return fmt.Sprintf("%s at %v: %s", v.Invariant, v.At, v.What) }

// Result is what a run found.
type Result struct {
	Violation *Violation // nil: every invariant held
	Events    int
	Answers   int // 200s clients received
	Failovers int // claims that landed
	End       T
}

type event struct {
	at  T
	seq uint64
	fn  func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// world is one run.
type world struct {
	cfg  Config
	rnd  *rand.Rand
	now  T
	q    queue
	seq  uint64
	stop bool
	res  Result

	bucket  bucket
	stream  []msg
	nodes   []*node
	clients []*client
	gw      gateway

	// What checkAll knows of the stream: the newest valid snapshot of
	// every session, as of the bucket revision and stream length checked.
	valid         map[int]msg
	checkedRev    uint64
	checkedLen    int
	checkedClaims fencing.Claims

	faultsEnd T
	lossy     bool // messages may be lost (only while faults happen)
	slowUntil T    // network delays are long until then
	// noLeader: the bucket and the stream elect a leader until then.
	// Writes that arrive meanwhile are applied once it is elected (a write
	// that lands after its attempt timed out); reads fail.
	noLeader T
}

// leader runs fn once the bucket and the stream have a leader.
func (w *world) leader(fn func()) {
	if w.now < w.noLeader {
		at := w.noLeader
		w.at(at, func() { w.leader(fn) })
		return
	}
	fn()
}

func (w *world) at(t T, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	heap.Push(&w.q, &event{at: t, seq: w.seq, fn: fn})
}

func (w *world) after(d time.Duration, fn func()) { w.at(w.now+T(d), fn) }

// delay is one network hop.
func (w *world) delay() time.Duration {
	d := time.Duration(200+w.rnd.IntN(3000)) * time.Microsecond
	if w.now < w.slowUntil {
		d += time.Duration(w.rnd.IntN(250)) * time.Millisecond
	}
	return d
}

// lost reports whether a message is lost.
func (w *world) lost() bool { return w.lossy && w.now < w.faultsEnd && w.rnd.IntN(100) < 5 }

func (w *world) trace(format string, args ...any) {
	if w.cfg.Trace != nil {
		w.cfg.Trace(fmt.Sprintf("%8v ", time.Duration(w.now).Round(time.Microsecond)) + fmt.Sprintf(format, args...))
	}
}

func (w *world) fail(inv, format string, args ...any) {
	if w.res.Violation == nil {
		w.res.Violation = &Violation{Invariant: inv, At: w.now, What: fmt.Sprintf(format, args...)}
		w.trace("VIOLATION %s", w.res.Violation)
	}
	w.stop = true
}

// bucket is the group's key-value entry: compare-and-set by revision.
type bucket struct {
	rev     uint64
	cur     protocol.Entry
	exists  bool
	history []protocol.Entry // every revision that landed, in order
}

func (b *bucket) cas(e protocol.Entry, rev uint64) (landed bool, cur protocol.Entry, exists bool) {
	ok := (rev == 0 && !b.exists) || (b.exists && rev == b.cur.Revision)
	if !ok {
		return false, b.cur, b.exists
	}
	b.rev++
	e.Revision = b.rev
	b.cur, b.exists = e, true
	b.history = append(b.history, e)
	return true, e, true
}

func (b *bucket) claims() fencing.Claims {
	if !b.exists {
		return nil
	}
	return b.cur.Claims
}

// msg is a snapshot in the session stream.
type msg struct {
	streamSeq uint64 // 1-based
	session   int
	seq       uint64 // interaction sequence
	epoch     uint64
	node      string
}

// top returns the newest message of session s, if any.
func (w *world) top(s int) (msg, bool) {
	for i := len(w.stream) - 1; i >= 0; i-- {
		if w.stream[i].session == s {
			return w.stream[i], true
		}
	}
	return msg{}, false
}

// newestValid returns the newest snapshot of session s in the stream that
// claims do not fence, looking at the first upTo messages (0: all).
func (w *world) newestValid(s int, claims fencing.Claims, upTo int) (msg, bool) {
	if upTo == 0 || upTo > len(w.stream) {
		upTo = len(w.stream)
	}
	for i := upTo - 1; i >= 0; i-- {
		m := w.stream[i]
		if m.session == s && !claims.Fenced(m.epoch, m.streamSeq) {
			return m, true
		}
	}
	return msg{}, false
}
