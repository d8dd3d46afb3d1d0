package subscriber_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/snapshot"
	"understudy/subscriber"
)

func TestHoldsNewestSnapshot(t *testing.T) {
	e := newEnv(t)
	live := e.start(subscriber.Config{}) // on an empty stream: every message arrives live
	w := make(want)
	published := 0
	const sessions = 40
	for stage := range stages {
		for n := range sessions {
			if stage <= n%len(stages) { // sessions stop at different pages
				w.put(e.publish(e.session(n, stage)))
				published++
			}
		}
	}
	e.drain(live)
	checkHolds(t, "live", live, w)
	if st := live.Stats(); st.Applied != uint64(published) || st.Older+st.Fenced+st.Quarantines+st.BadSubjects != 0 || !st.CaughtUp || st.Lag != 0 {
		t.Errorf("live stats %+v, want %d applied and nothing else", st, published)
	}

	late := e.caughtUp(subscriber.Config{})
	checkHolds(t, "catch-up", late, w)
	if st := late.Stats(); st.Applied != sessions || st.Processed != e.lastSeq() {
		t.Errorf("catch-up stats %+v, want %d applied (one per session), processed %d", st, sessions, e.lastSeq())
	}
	checkReads(t, e.ctx, late, w)
	checkReads(t, e.ctx, subscriber.NewReader(e.stream, subscriber.Config{Logger: brokertest.Logger(t)}), w)
}

func TestCatchUpMidStreamAndRestart(t *testing.T) {
	e := newEnv(t)
	w := make(want)
	for n := range 30 {
		w.put(e.publish(e.session(n, 0)))
		w.put(e.publish(e.session(n, 1)))
	}
	// Started with history in the stream; more arrives while it catches up.
	first := e.start(subscriber.Config{})
	for n := range 60 {
		w.put(e.publish(e.session(n, 2)))
	}
	e.drain(first)
	checkHolds(t, "started mid-stream", first, w)
	if err := first.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	checkHolds(t, "closed (still readable)", first, w)

	// While no backup runs: updates, ends, new sessions.
	down := w.clone()
	for n := range 20 {
		down.put(e.publish(e.session(n, 3)))
	}
	for n := 20; n < 30; n++ {
		st := down[modeltest.SessionID(n)]
		e.end(st.Session, st.Node, st.Epoch, st.Seq+1)
		down.drop(st.Session)
	}
	for n := 60; n < 80; n++ {
		down.put(e.publish(e.session(n, 0)))
	}
	restarted := e.caughtUp(subscriber.Config{})
	checkHolds(t, "restarted", restarted, down)
	checkHolds(t, "closed, unchanged", first, w)
}

func TestConsumerResetAfterServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server")
	}
	e := newEnv(t)
	w := make(want)
	for n := range 10 {
		w.put(e.publish(e.session(n, 0)))
	}
	sub := e.caughtUp(subscriber.Config{})
	// The consumer lives in the server's memory: the restart loses it and
	// the ordered consumer recreates it after the last message handled.
	e.srv.Restart()
	brokertest.WaitFor(t, testTimeout, "stream available after restart", func() bool {
		ctx, cancel := context.WithTimeout(e.ctx, time.Second)
		defer cancel()
		_, err := e.stream.Info(ctx)
		return err == nil
	})
	for n := range 15 {
		w.put(e.publish(e.session(n, 1)))
	}
	e.drain(sub)
	checkHolds(t, "after restart", sub, w)
}

func TestFencedSnapshotsIgnored(t *testing.T) {
	e := newEnv(t)
	fence := &fenceVar{}
	live := e.start(subscriber.Config{Fence: fence})
	w := make(want)
	for n := range 10 {
		w.put(e.publish(as(e.session(n, 0), "n1", 1)))
		w.put(e.publish(as(e.session(n, 1), "n1", 1)))
	}
	// n2 claims the group at epoch 2 after draining the stream; n1 has not
	// noticed and goes on writing: everything it writes now is fenced.
	fence.claim(2, e.lastSeq())
	for n := range 5 {
		e.publish(as(e.session(n, 2), "n1", 1))
	}
	e.publish(as(e.session(0, 3), "n1", 1))  // a second fenced one on top
	e.publish(as(e.session(10, 0), "n1", 1)) // a session with only a fenced snapshot
	// n2 publishes over the fenced tops of sessions 3 and 4.
	for n := 3; n < 5; n++ {
		w.put(e.publish(as(e.session(n, 3), "n2", 2)))
	}
	e.drain(live)
	checkHolds(t, "live", live, w)
	if st := live.Stats(); st.Fenced != 7 {
		t.Errorf("live: %d fenced, want 7", st.Fenced)
	}

	// A catch-up sees only each session's newest message; under a fenced
	// one it reads the newest valid snapshot from the stream leader.
	late := e.caughtUp(subscriber.Config{Fence: fence})
	checkHolds(t, "catch-up", late, w)
	if st := late.Stats(); st.Reads != 3 {
		t.Errorf("catch-up: %d reads under fenced snapshots, want 3 (sessions 0, 1, 2)", st.Reads)
	}
	checkReads(t, e.ctx, late, w)
	if _, err := late.ReadLatest(e.ctx, modeltest.SessionID(10)); !isNotFound(err) {
		t.Errorf("ReadLatest of a session with only fenced snapshots: %v, want ErrNotFound", err)
	}
}

func TestRefenceReplacesFencedSnapshots(t *testing.T) {
	e := newEnv(t)
	fence := &fenceVar{}
	sub := e.start(subscriber.Config{Fence: fence})
	w := make(want)
	for n := range 6 {
		w.put(e.publish(as(e.session(n, 0), "n1", 1)))
	}
	fenceSeq := e.lastSeq()
	// n1 writes on after n2 drained to fenceSeq, before the backup hears
	// of n2's claim: it holds these.
	var zombie []snapshot.Stored
	for n := range 3 {
		zombie = append(zombie, e.publish(as(e.session(n, 1), "n1", 1)))
	}
	zombie = append(zombie, e.publish(as(e.session(6, 0), "n1", 1)))
	ended := w[modeltest.SessionID(3)]
	e.end(ended.Session, "n1", 1, ended.Seq+1)
	e.drain(sub)
	for _, z := range zombie {
		if got, ok := sub.Get(z.Session); !ok || !sameStored(got, z) {
			t.Fatalf("before the claim: session %s not held at stream seq %d", z.Session, z.StreamSeq)
		}
	}
	if _, ok := sub.Get(ended.Session); ok {
		t.Fatal("before the claim: session ended by n1 still held")
	}

	fence.claim(2, fenceSeq)
	if _, ok := sub.Get(zombie[0].Session); ok {
		t.Error("Get returned a snapshot the new claim fences")
	}
	if err := sub.Refence(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Sessions 0-2 back to n1's valid snapshots, 6 dropped, 3 not ended.
	checkHolds(t, "after Refence", sub, w)
	if st := sub.Stats(); st.Reads != 5 || st.Ended != 0 {
		t.Errorf("%d reads, %d ended; want 5, 0", st.Reads, st.Ended)
	}

	// From now on the fence applies on arrival.
	e.publish(as(e.session(1, 2), "n1", 1))
	w.put(e.publish(as(e.session(2, 2), "n2", 2)))
	e.drain(sub)
	checkHolds(t, "after more writes", sub, w)
	if err := sub.Refence(e.ctx); err != nil {
		t.Fatal(err)
	}
	checkHolds(t, "after a second Refence", sub, w)
}

func TestTombstonesEndSessions(t *testing.T) {
	e := newEnv(t)
	live := e.start(subscriber.Config{})
	w := make(want)
	for n := range 10 {
		w.put(e.publish(e.session(n, 0)))
		w.put(e.publish(e.session(n, 1)))
	}
	var ended []model.SessionID
	for n := range 4 {
		st := w[modeltest.SessionID(n)]
		e.end(st.Session, st.Node, st.Epoch, st.Seq+1)
		w.drop(st.Session)
		ended = append(ended, st.Session)
	}
	e.drain(live)
	checkHolds(t, "live", live, w)
	late := e.caughtUp(subscriber.Config{})
	checkHolds(t, "catch-up", late, w)
	checkReads(t, e.ctx, late, w)
	if _, err := late.ReadLatest(e.ctx, ended[0]); !errors.Is(err, subscriber.ErrEnded) || !isNotFound(err) {
		t.Errorf("ReadLatest of an ended session: %v, want ErrEnded and ErrNotFound", err)
	}

	// A primary that lost the group writes over a tombstone. A catch-up
	// sees the fenced snapshot, reads below it, finds the tombstone: the
	// older snapshot under the tombstone does not bring the session back.
	fence := &fenceVar{}
	fence.claim(2, e.lastSeq())
	e.publish(as(e.session(1, 2), "n1", 1))
	again := e.caughtUp(subscriber.Config{Fence: fence})
	checkHolds(t, "fenced over a tombstone", again, w)
	if st := again.Stats(); st.Reads != 1 || st.Tombstones != uint64(len(ended)) {
		t.Errorf("stats %+v, want 1 read, %d tombstones (one found by the read)", st, len(ended))
	}
	checkReads(t, e.ctx, again, w)
}

// corruption makes a bad message for a session from a good snapshot s of
// it: the meta its headers are made from, the payload, and a change to
// the headers made after.
type corruption struct {
	name string
	make func(e *env, s *model.Session) (snapshot.Meta, []byte, func(nats.Header))
}

func metaOf(s *model.Session) snapshot.Meta {
	return snapshot.Meta{Session: s.ID, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion}
}

var corruptions = []corruption{
	{"payload is not a snapshot", func(e *env, s *model.Session) (snapshot.Meta, []byte, func(nats.Header)) {
		return metaOf(s), []byte("\xa1not a snapshot at all"), nil
	}},
	{"payload is another session", func(e *env, s *model.Session) (snapshot.Meta, []byte, func(nats.Header)) {
		other := e.session(99, 2)
		data, _ := cbor.Marshal(other)
		m := metaOf(other)
		m.Session = s.ID
		return m, data, nil
	}},
	{"headers do not match the payload", func(e *env, s *model.Session) (snapshot.Meta, []byte, func(nats.Header)) {
		data, _ := cbor.Marshal(s)
		m := metaOf(s)
		m.Epoch = 7
		return m, data, nil
	}},
	{"Nats-Msg-Id does not match", func(e *env, s *model.Session) (snapshot.Meta, []byte, func(nats.Header)) {
		data, _ := cbor.Marshal(s)
		return metaOf(s), data, func(h nats.Header) { h.Set(nats.MsgIdHdr, "forged-"+string(s.ID)) }
	}},
	{"header missing", func(e *env, s *model.Session) (snapshot.Meta, []byte, func(nats.Header)) {
		data, _ := cbor.Marshal(s)
		return metaOf(s), data, func(h nats.Header) { h.Del(snapshot.HeaderEpoch) }
	}},
}

func TestCorruptMessageQuarantinesOnlyItsSession(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	reported := make(map[model.SessionID]error)
	cfg := subscriber.Config{OnQuarantine: func(id model.SessionID, err error) {
		mu.Lock()
		defer mu.Unlock()
		reported[id] = err
	}}
	live := e.start(cfg)
	w := make(want)
	for n := range 10 {
		w.put(e.publish(e.session(n, 1)))
	}
	bad := make(map[model.SessionID]string)
	badN := make(map[model.SessionID]int)
	for i, c := range corruptions {
		n := 20 + i
		w.put(e.publish(e.session(n, 0)))
		s := e.session(n, 1)
		m, data, change := c.make(e, s)
		e.mu.Lock()
		m.Prev = e.last[s.ID]
		e.mu.Unlock()
		h := m.Header(data)
		if change != nil {
			change(h)
		}
		e.publishRaw(e.subject(s.ID), h, data, m)
		bad[s.ID], badN[s.ID] = c.name, n
	}
	// Not a session's subject at all.
	e.publishRaw("understudy.sess.not-a-session-id", nats.Header{}, []byte("x"), snapshot.Meta{})
	// Sessions published after the bad ones are unaffected too.
	for n := 10; n < 15; n++ {
		w.put(e.publish(e.session(n, 2)))
	}
	e.drain(live)

	checkQuarantined := func(what string, sub *subscriber.Subscriber) {
		t.Helper()
		q := sub.Quarantined()
		if len(q) != len(bad) {
			t.Errorf("%s: %d sessions quarantined, want %d: %v", what, len(q), len(bad), q)
		}
		for id, name := range bad {
			err := q[id]
			if !errors.Is(err, subscriber.ErrQuarantined) || !errors.Is(err, snapshot.ErrBadMessage) || !strings.Contains(err.Error(), string(id)) {
				t.Errorf("%s: %s: session %s: quarantine error %v, want ErrQuarantined and ErrBadMessage naming the session", what, name, id, err)
			}
		}
		if st := sub.Stats(); st.BadSubjects != 1 || st.Quarantined != len(bad) {
			t.Errorf("%s: stats %+v, want 1 bad subject and %d quarantined", what, st, len(bad))
		}
	}
	checkQuarantined("live", live)
	checkHolds(t, "live: the previous good snapshots", live, w)
	mu.Lock()
	for id, name := range bad {
		if err := reported[id]; err == nil || err.Error() != live.Quarantined()[id].Error() {
			t.Errorf("%s: OnQuarantine got %v", name, err)
		}
	}
	mu.Unlock()

	// A backup that starts now never saw the good snapshots under the bad
	// ones.
	late := e.caughtUp(subscriber.Config{})
	checkQuarantined("catch-up", late)
	lateWant := w.clone()
	for id := range bad {
		lateWant.drop(id)
	}
	checkHolds(t, "catch-up", late, lateWant)
	// The cold-standby read skips them, reads the rest, and says which.
	read := make(want)
	err := late.ReadAll(e.ctx, func(st snapshot.Stored) error { read.put(st); return nil })
	if !errors.Is(err, snapshot.ErrBadMessage) {
		t.Errorf("ReadAll: %v, want ErrBadMessage", err)
	}
	for id := range bad {
		if !strings.Contains(err.Error(), string(id)) {
			t.Errorf("ReadAll error does not name %s", id)
		}
	}
	if len(read) != len(lateWant) {
		t.Errorf("ReadAll read %d sessions, want %d", len(read), len(lateWant))
	}

	// A valid snapshot lifts the quarantine.
	for id := range bad {
		w.put(e.publish(e.session(badN[id], 2)))
		lateWant.put(w[id])
	}
	e.drain(live)
	e.drain(late)
	for _, sub := range []*subscriber.Subscriber{live, late} {
		if q := sub.Quarantined(); len(q) != 0 {
			t.Errorf("still quarantined after valid snapshots: %v", q)
		}
	}
	checkHolds(t, "live after valid snapshots", live, w)
	checkHolds(t, "catch-up after valid snapshots", late, lateWant)
}

func TestProgress(t *testing.T) {
	e := newEnv(t)
	empty := e.start(subscriber.Config{})
	if !empty.CaughtUp() || empty.Lag() != 0 {
		t.Errorf("on an empty stream: caught up %v, lag %d; want caught up at once", empty.CaughtUp(), empty.Lag())
	}
	if err := empty.DrainTo(e.ctx, 0); err != nil {
		t.Error(err)
	}

	// The stream's last message deleted: DrainTo cannot see it delivered.
	e.publish(e.session(0, 0))
	e.publish(e.session(1, 0))
	e.publish(e.session(0, 1)) // supersedes stream seq 1
	e.publish(e.session(2, 0))
	last := e.lastSeq()
	if err := e.stream.DeleteMsg(e.ctx, last); err != nil {
		t.Fatal(err)
	}
	sub := e.caughtUp(subscriber.Config{})
	if err := sub.DrainTo(e.ctx, last); err != nil {
		t.Fatal(err)
	}
	if sub.Processed() != last-1 || sub.Len() != 2 || sub.Lag() != 0 {
		t.Errorf("processed %d, %d sessions, lag %d; want %d, 2, 0", sub.Processed(), sub.Len(), sub.Lag(), last-1)
	}
	if err := empty.DrainTo(e.ctx, last); err != nil {
		t.Fatal(err)
	}

	// A live message: DrainTo returns once it is held.
	st := e.publish(e.session(3, 0))
	if err := sub.DrainTo(e.ctx, st.StreamSeq); err != nil {
		t.Fatal(err)
	}
	if _, ok := sub.Get(st.Session); !ok || sub.Processed() != st.StreamSeq {
		t.Errorf("after DrainTo(%d): held %v, processed %d", st.StreamSeq, ok, sub.Processed())
	}
}

// TestDrainPastASilentConsumer: a consumer that hands over nothing (its
// server died and it resets itself with a backoff of seconds) does not hold
// up a promotion: DrainTo reads what it waits for from the stream leader,
// and the consumer's late deliveries change nothing.
func TestDrainPastASilentConsumer(t *testing.T) {
	e := newEnv(t)
	w := want{}
	for n := range 3 {
		w.put(e.publish(e.session(n, 0)))
	}
	sub := e.caughtUp(subscriber.Config{})
	e.drain(sub)
	subscriber.SilenceConsumer(sub)
	w.put(e.publish(e.session(1, 1)))
	w.put(e.publish(e.session(3, 0)))
	ended := w[e.session(0, 0).ID]
	e.end(ended.Session, ended.Node, ended.Epoch, ended.Seq+1)
	w.drop(ended.Session)
	last := e.lastSeq()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := sub.DrainTo(ctx, last); err != nil {
		t.Fatal(err)
	}
	if sub.Processed() != last {
		t.Errorf("processed %d, want %d", sub.Processed(), last)
	}
	checkHolds(t, "after a drain past a silent consumer", sub, w)
}

// TestCatchUpSurvivesAConsumerReset: a catch-up whose consumer is lost in
// its middle (its server died) starts its pass of each session's newest
// message again, instead of letting nats.go's ordered consumer go on by
// stream sequence, which replays every older version after the last
// message delivered.
func TestCatchUpSurvivesAConsumerReset(t *testing.T) {
	e := newEnv(t)
	w := want{}
	// One session's newest message first, then 16 versions (the stream's
	// history per session) of each of 40 others: a pass reset after its
	// first message and gone on by sequence replays all 640.
	w.put(e.publish(e.session(0, 0)))
	for v := range 16 {
		for n := 1; n <= 40; n++ {
			w.put(e.publish(e.session(n, v)))
		}
	}
	var (
		once    sync.Once
		handled atomic.Int64
	)
	cfg := subscriber.WithAfterHandle(subscriber.WithPullBatch(subscriber.Config{}, 1), func(*subscriber.Subscriber, uint64) {
		handled.Add(1)
		once.Do(e.srv.Restart) // after the pass's first message
	})
	sub := e.start(cfg)
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := sub.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	checkHolds(t, "after a catch-up whose consumer reset", sub, w)
	if n := handled.Load(); n > 2*int64(len(w))+10 {
		t.Errorf("the catch-up handled %d messages for %d sessions: it replayed the stream after the reset", n, len(w))
	}
}

func TestProgressWhileBehind(t *testing.T) {
	e := newEnv(t)
	// The first message quarantines its session; the callback holds the
	// consumer there, so the backup is behind for as long as the test
	// wants.
	s := e.session(0, 0)
	m := snapshot.Meta{Session: s.ID, Epoch: 1, Seq: 1, Node: "n1", Format: cbor.FormatVersion}
	e.publishRaw(e.subject(s.ID), m.Header([]byte("bad")), []byte("bad"), m)
	for n := 1; n <= 10; n++ {
		e.publish(e.session(n, 0))
	}
	last := e.lastSeq()
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	sub := e.start(subscriber.Config{OnQuarantine: func(model.SessionID, error) {
		blocked <- struct{}{}
		<-release
	}})
	select {
	case <-blocked:
	case <-e.ctx.Done():
		t.Fatal("no quarantine")
	}
	if sub.CaughtUp() || sub.Lag() != 11 || sub.Processed() != 0 {
		t.Errorf("behind: caught up %v, lag %d, processed %d; want false, 11, 0", sub.CaughtUp(), sub.Lag(), sub.Processed())
	}
	short, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancel()
	if err := sub.DrainTo(short, last); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DrainTo while behind: %v, want DeadlineExceeded", err)
	}
	if err := sub.WaitCaughtUp(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitCaughtUp while behind: %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := sub.WaitCaughtUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.DrainTo(e.ctx, last); err != nil {
		t.Fatal(err)
	}
	if sub.Lag() != 0 || sub.Processed() != last || sub.Len() != 10 {
		t.Errorf("caught up: lag %d, processed %d, %d sessions; want 0, %d, 10", sub.Lag(), sub.Processed(), sub.Len(), last)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	sub := subscriber.New(e.js, e.stream, subscriber.Config{Logger: brokertest.Logger(t)})
	if err := sub.WaitCaughtUp(e.ctx); !errors.Is(err, subscriber.ErrNotStarted) {
		t.Errorf("WaitCaughtUp before Start: %v", err)
	}
	if err := sub.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(e.ctx); !errors.Is(err, subscriber.ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if err := sub.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(e.ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sub.Start(e.ctx); !errors.Is(err, subscriber.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if err := sub.DrainTo(e.ctx, 1); !errors.Is(err, subscriber.ErrClosed) {
		t.Errorf("DrainTo after Close: %v", err)
	}
	names := e.stream.ConsumerNames(e.ctx)
	for name := range names.Name() {
		t.Errorf("consumer %s left after Close", name)
	}

	bad := subscriber.New(e.js, e.stream, subscriber.Config{MaxEnded: -1})
	if err := bad.Start(e.ctx); !errors.Is(err, subscriber.ErrInvalidConfig) {
		t.Errorf("Start with an invalid config: %v", err)
	}
	if err := (subscriber.Config{ReadTimeout: -time.Second}).Validate(); !errors.Is(err, subscriber.ErrInvalidConfig) {
		t.Errorf("Validate: %v", err)
	}
	if err := (subscriber.Config{}).Validate(); err != nil {
		t.Errorf("Validate of the zero Config: %v", err)
	}
}

// nats-server skips messages of a DeliverLastPerSubject consumer's first
// pass when a pull request cannot take them; pulling with a small byte
// budget makes that certain. The catch-up must notice and read the
// sessions it was not given.
func TestCatchUpNoticesSkippedSessions(t *testing.T) {
	e := newEnv(t)
	w := make(want)
	for n := range 200 {
		w.put(e.publish(e.session(n, n%len(stages))))
	}
	cfg := subscriber.WithPullMaxBytes(subscriber.Config{Logger: brokertest.Logger(t)}, 4000)
	sub := e.caughtUp(cfg)
	checkHolds(t, "caught up", sub, w)
	if st := sub.Stats(); st.Reads == 0 {
		t.Errorf("stats %+v: no session read after the catch-up; did the server skip none?", st)
	}
	brokertest.WaitFor(t, testTimeout, "lag 0", func() bool { return sub.Lag() == 0 })
	for n := range 20 {
		w.put(e.publish(e.session(n, n%len(stages)+1)))
	}
	e.drain(sub)
	checkHolds(t, "after more", sub, w)
	checkReads(t, e.ctx, subscriber.NewReader(e.stream, cfg), w)
}

// Range does not hold the lock while fn runs: the consumer goes on
// applying, and fn may call the Subscriber.
func TestRangeWhileUpdating(t *testing.T) {
	e := newEnv(t)
	sub := e.start(subscriber.Config{})
	w := make(want)
	for n := range 30 {
		w.put(e.publish(e.session(n, 0)))
	}
	e.drain(sub)
	seen := 0
	sub.Range(func(st snapshot.Stored) bool {
		seen++
		if got, ok := sub.Get(st.Session); !ok || got.StreamSeq < st.StreamSeq {
			t.Errorf("Get inside Range: %v %v", got.StreamSeq, ok)
		}
		// Updates and new sessions arrive while Range runs.
		w.put(e.publish(e.session(seen, 1)))
		w.put(e.publish(e.session(100+seen, 0)))
		return true
	})
	if seen < 30 {
		t.Errorf("Range saw %d sessions, want at least the 30 held when it started", seen)
	}
	stopped := 0
	sub.Range(func(snapshot.Stored) bool { stopped++; return false })
	if stopped != 1 {
		t.Errorf("Range went on after fn returned false: %d calls", stopped)
	}
	e.drain(sub)
	checkHolds(t, "after Range", sub, w)
}

// TestSealedSnapshots: a backup with the key holds sealed snapshots as
// stored (still sealed) and quarantines one that does not open (moved to
// another session's subject); a backup without the key quarantines every
// sealed session, saying why.
func TestSealedSnapshots(t *testing.T) {
	e := newEnv(t)
	k, err := snapshot.ParseKeyring([]byte("k1 " + strings.Repeat("5a", 32)))
	if err != nil {
		t.Fatal(err)
	}
	seal := func(s *model.Session) snapshot.Stored {
		t.Helper()
		plain, err := cbor.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		m := snapshot.Meta{Session: s.ID, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion}
		data, key, err := k.Seal(m, plain)
		if err != nil {
			t.Fatal(err)
		}
		m.Key = key
		return e.publishMeta(m, data)
	}
	w := make(want)
	for n := range 5 {
		w.put(seal(e.session(n, 1)))
	}
	// Session 5's sealed payload, published on session 6's subject with
	// headers that claim session 6 (and a matching Nats-Msg-Id).
	moved := seal(e.session(5, 1))
	w.put(moved)
	m := moved.Meta
	m.Session = e.session(6, 1).ID
	e.publishMeta(m, moved.Data)

	with := e.caughtUp(subscriber.Config{Sealer: k})
	e.drain(with)
	checkHolds(t, "with the key", with, w)
	for id := range w {
		got, _ := with.Get(id)
		if got.Key != "k1" || bytes.Contains(got.Data, []byte("Ada")) {
			t.Errorf("session %s held as %+v: want it still sealed", id, got.Meta)
		}
		if _, err := snapshot.Open(k, got.Meta, got.Data); err != nil {
			t.Errorf("session %s: %v", id, err)
		}
	}
	q := with.Quarantined()
	if err := q[m.Session]; len(q) != 1 || !errors.Is(err, snapshot.ErrSealed) || !strings.Contains(err.Error(), string(m.Session)) {
		t.Errorf("quarantined %v: want session %s, whose seal does not open", q, m.Session)
	}

	without := e.caughtUp(subscriber.Config{})
	e.drain(without)
	checkHolds(t, "without the key", without, want{})
	q = without.Quarantined()
	if len(q) != 7 {
		t.Errorf("without the key: %d quarantined, want 7", len(q))
	}
	for id, err := range q {
		if !errors.Is(err, snapshot.ErrSealed) || !strings.Contains(err.Error(), "no key file") || !strings.Contains(err.Error(), string(id)) {
			t.Errorf("session %s: %v", id, err)
		}
	}
}
