package publisher_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/publisher"
	"understudy/snapshot"
)

var ctx = context.Background()

type env struct {
	srv     *brokertest.Server
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject broker.Subjects
}

func setup(t testing.TB, opts ...brokertest.Option) *env {
	t.Helper()
	srv := brokertest.Start(t, opts...)
	js := srv.JetStream(t, brokertest.NoReconnectBuffer())
	e := &env{srv: srv, js: js}
	var err error
	if e.stream, err = broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) publisher(t testing.TB, node string, fence snapshot.Fence) *publisher.Publisher {
	t.Helper()
	return e.publisherOn(t, e.js, node, fence, nil)
}

func (e *env) publisherOn(t testing.TB, js jetstream.JetStream, node string, fence snapshot.Fence, mod func(*publisher.Config)) *publisher.Publisher {
	t.Helper()
	stream, err := js.Stream(ctx, e.subject.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	cfg := publisher.Config{Node: node, Fence: fence, Logger: brokertest.Logger(t)}
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := publisher.New(js, stream, cfg)
	t.Cleanup(func() { p.Close(ctx) })
	return p
}

// stamped returns a quote session at a step, owned by node at epoch.
func stamped(t testing.TB, n int, stop, node string, epoch uint64) *model.Session {
	t.Helper()
	run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(n), 2, stop)
	if err != nil {
		t.Fatal(err)
	}
	return run.Restamp(node, epoch).Session()
}

func (e *env) latest(t testing.TB, id model.SessionID, fence snapshot.Fence) snapshot.Stored {
	t.Helper()
	st, err := snapshot.Latest(ctx, e.stream, e.subject, nil, id, fence)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPublishChainsAndStores(t *testing.T) {
	e := setup(t)
	p := e.publisher(t, "n1", nil)
	var last uint64
	for i, stop := range []string{"applicant", "vehicle", "drivers/driver/who", "payment/card/details", ""} {
		s := stamped(t, 1, stop, "n1", 1)
		ack, err := p.Publish(ctx, s)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.StreamSeq <= last || ack.Duplicate {
			t.Fatalf("ack %+v after %d", ack, last)
		}
		st := e.latest(t, s.ID, nil)
		want, _ := cbor.Marshal(s)
		if !bytes.Equal(st.Data, want) || st.StreamSeq != ack.StreamSeq || st.Prev != last || st.Seq != s.Seq || st.Node != "n1" {
			t.Fatalf("stored %+v, want seq %d prev %d", st.Meta, ack.StreamSeq, last)
		}
		last = ack.StreamSeq
	}
}

func TestRetriedPublishThatLanded(t *testing.T) {
	e := setup(t)
	s := stamped(t, 2, "vehicle", "n1", 1)
	first, err := e.publisher(t, "n1", nil).Publish(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// A second publisher that never saw the ack (a retry after a lost ack):
	// the duplicate window catches it.
	again, err := e.publisher(t, "n1", nil).Publish(ctx, s)
	if err != nil || !again.Duplicate || again.StreamSeq != first.StreamSeq {
		t.Fatalf("retry: %+v %v, want a duplicate of %d", again, err, first.StreamSeq)
	}
}

func TestRetriedPublishAfterTheDuplicateWindow(t *testing.T) {
	e := setup(t)
	if err := e.js.DeleteStream(ctx, e.subject.StreamName()); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.stream, err = broker.EnsureStream(ctx, e.js, broker.StreamConfig{Duplicates: 100 * time.Millisecond, Logger: brokertest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	s := stamped(t, 3, "vehicle", "n1", 1)
	first, err := e.publisher(t, "n1", nil).Publish(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// Past the window the stream no longer deduplicates; the expected
	// sequence conflicts, and reading the stream shows it landed.
	stored := e.latest(t, s.ID, nil).Time
	brokertest.WaitFor(t, 10*time.Second, "duplicate window to pass", func() bool {
		return time.Since(stored) > 300*time.Millisecond
	})
	again, err := e.publisher(t, "n1", nil).Publish(ctx, s)
	if err != nil || !again.Duplicate || again.StreamSeq != first.StreamSeq {
		t.Fatalf("retry: %+v %v, want the stored %d", again, err, first.StreamSeq)
	}
}

func TestConflictWithANewerOwnerIsFenced(t *testing.T) {
	e := setup(t)
	old := e.publisher(t, "n1", nil)
	s1 := stamped(t, 4, "vehicle", "n1", 1)
	ack, err := old.Publish(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	// n2 takes over at epoch 2 and publishes the session.
	claims := snapshot.Claims{{Epoch: 1}, {Epoch: 2, Fence: ack.StreamSeq}}
	taker := e.publisher(t, "n2", claims)
	taker.Track(s1.ID, ack.StreamSeq)
	if _, err := taker.Publish(ctx, stamped(t, 4, "vehicle", "n2", 2)); err != nil {
		t.Fatal(err)
	}
	// The old primary's next publish is refused by the stream.
	_, err = old.Publish(ctx, stamped(t, 4, "drivers/driver/who", "n1", 1))
	if !errors.Is(err, publisher.ErrFenced) || !bytes.Contains([]byte(err.Error()), []byte(s1.ID)) {
		t.Fatalf("got %v, want ErrFenced naming the session", err)
	}
	if st := e.latest(t, s1.ID, claims); st.Node != "n2" {
		t.Fatalf("newest valid snapshot by %s", st.Node)
	}
}

func TestNewOwnerPublishesOverFencedSnapshots(t *testing.T) {
	e := setup(t)
	old := e.publisher(t, "n1", nil)
	s := stamped(t, 5, "vehicle", "n1", 1)
	ack, err := old.Publish(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// n2 claims epoch 2 having drained to ack.StreamSeq; n1, not knowing,
	// publishes twice more: both are fenced.
	claims := snapshot.Claims{{Epoch: 1}, {Epoch: 2, Fence: ack.StreamSeq}}
	var fencedSeq uint64
	for _, stop := range []string{"drivers/driver/who", "drivers/driver/more"} {
		a, err := old.Publish(ctx, stamped(t, 5, stop, "n1", 1))
		if err != nil {
			t.Fatal(err)
		}
		fencedSeq = a.StreamSeq
	}
	if st := e.latest(t, s.ID, claims); st.StreamSeq != ack.StreamSeq {
		t.Fatalf("newest valid is %d, want %d below the fenced ones", st.StreamSeq, ack.StreamSeq)
	}
	taker := e.publisher(t, "n2", claims)
	taker.Track(s.ID, ack.StreamSeq)
	got, err := taker.Publish(ctx, stamped(t, 5, "vehicle", "n2", 2))
	if err != nil {
		t.Fatal(err)
	}
	if got.Over != fencedSeq {
		t.Errorf("published over %d, want %d", got.Over, fencedSeq)
	}
	if st := e.latest(t, s.ID, claims); st.StreamSeq != got.StreamSeq || st.Node != "n2" || st.Prev != fencedSeq {
		t.Fatalf("newest valid %+v", st.Meta)
	}
}

func TestTombstone(t *testing.T) {
	e := setup(t)
	p := e.publisher(t, "n1", nil)
	s := stamped(t, 6, "", "n1", 1)
	if _, err := p.Publish(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := p.End(ctx, s.ID, 1, s.Seq); err != nil {
		t.Fatal(err)
	}
	st := e.latest(t, s.ID, nil)
	if !st.Tombstone || len(st.Data) != 0 || st.Seq != s.Seq {
		t.Fatalf("top %+v", st.Meta)
	}
	if p.Sessions() != 0 {
		t.Error("an ended session is still tracked")
	}
}

func TestBrokerStoppedMidSession(t *testing.T) {
	e := setup(t)
	p := e.publisher(t, "n1", nil)
	if _, err := p.Publish(ctx, stamped(t, 7, "vehicle", "n1", 1)); err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	// Once the client knows it is disconnected, a publish fails at once and
	// is known not stored: nodes run without a reconnect buffer.
	brokertest.WaitFor(t, 10*time.Second, "client to notice", func() bool { return !e.js.Conn().IsConnected() })
	_, err := p.Publish(ctx, stamped(t, 7, "drivers/driver/who", "n1", 1))
	if !errors.Is(err, publisher.ErrNotStored) {
		t.Fatalf("got %v, want ErrNotStored", err)
	}
	e.srv.Start()
	// The client reconnects by itself; the next publish goes through.
	var ack publisher.Ack
	brokertest.WaitFor(t, 20*time.Second, "publish after the broker is back", func() bool {
		ack, err = p.Publish(ctx, stamped(t, 7, "drivers/driver/who", "n1", 1))
		return err == nil
	})
	if st := e.latest(t, stamped(t, 7, "", "n1", 1).ID, nil); st.StreamSeq != ack.StreamSeq {
		t.Fatalf("stream ends at %d, ack said %d", st.StreamSeq, ack.StreamSeq)
	}
}

func TestOversizedSnapshot(t *testing.T) {
	e := setup(t)
	p := e.publisherOn(t, e.js, "n1", nil, func(c *publisher.Config) { c.MaxSnapshot = 100 })
	_, err := p.Publish(ctx, stamped(t, 8, "vehicle", "n1", 1))
	if !errors.Is(err, publisher.ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func TestAsyncBackpressureAndErrors(t *testing.T) {
	e := setup(t)
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(e.srv.URL(), "nats://"))
	cfg := e.srv.ClientConfig(t, brokertest.NoReconnectBuffer())
	cfg.URL = proxy.URL()
	nc, err := broker.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	var mu sync.Mutex
	var errs []error
	p := e.publisherOn(t, js, "n1", nil, func(c *publisher.Config) {
		c.MaxPending = 2
		c.Timeout = 300 * time.Millisecond
		c.OnAsyncError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	})

	// A healthy broker: every session ends up with its newest snapshot;
	// later snapshots of a session coalesce behind the one in flight.
	for i := range 20 {
		for _, stop := range []string{"vehicle", "drivers/driver/who", "payment/card/details"} {
			if err := p.PublishAsync(ctx, stamped(t, 100+i, stop, "n1", 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	brokertest.WaitFor(t, 20*time.Second, "async publishes to finish", func() bool { return p.Pending() == 0 })
	for i := range 20 {
		want := stamped(t, 100+i, "payment/card/details", "n1", 1)
		if st := e.latest(t, want.ID, nil); st.Seq != want.Seq {
			t.Fatalf("session %d holds seq %d, want %d", i, st.Seq, want.Seq)
		}
	}
	mu.Lock()
	if len(errs) != 0 {
		t.Fatalf("errors with a healthy broker: %v", errs)
	}
	mu.Unlock()

	// A stalled broker: two sessions in flight fill the slots; the third
	// waits, and gives up with its ctx.
	proxy.Pause()
	for i := range 2 {
		if err := p.PublishAsync(ctx, stamped(t, 200+i, "vehicle", "n1", 1)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := p.PublishAsync(short, stamped(t, 202, "vehicle", "n1", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third publish on a stalled broker: %v, want backpressure", err)
	}
	// The stalled publishes time out, cannot read the stream either, and
	// report that their outcome is unknown.
	brokertest.WaitFor(t, 20*time.Second, "errors reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) == 2
	})
	mu.Lock()
	for _, err := range errs {
		if !errors.Is(err, publisher.ErrUnknownOutcome) {
			t.Errorf("async error %v, want ErrUnknownOutcome", err)
		}
	}
	mu.Unlock()
	proxy.Resume()
	brokertest.WaitFor(t, 20*time.Second, "slots to free", func() bool { return p.Pending() == 0 })
	// Their snapshots were stored after all; the next publish of each
	// learns that from the stream and reports the divergence.
	_, err = p.Publish(ctx, stamped(t, 200, "drivers/driver/who", "n1", 1))
	var div *publisher.DivergedError
	if !errors.As(err, &div) || div.Stored.Seq != stamped(t, 200, "vehicle", "n1", 1).Seq {
		t.Fatalf("got %v, want a DivergedError with the stored snapshot", err)
	}
}

// TestSealedSnapshots: with a Sealer, what the stream stores is sealed
// (its Understudy-Key names the key, its Nats-Msg-Id hashes the sealed
// bytes), a reader with the key opens it, tombstones are sealed too, and
// a retried publish of the same snapshot is still recognised as stored.
func TestSealedSnapshots(t *testing.T) {
	e := setup(t)
	k, err := snapshot.ParseKeyring([]byte("k1 " + strings.Repeat("42", 32) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := e.publisherOn(t, e.js, "n1", nil, func(c *publisher.Config) { c.Sealer = k })
	s := stamped(t, 1, "vehicle", "n1", 1)
	plain, _ := cbor.Marshal(s)
	ack, err := p.Publish(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Latest(ctx, e.stream, e.subject, nil, s.ID, nil); !errors.Is(err, snapshot.ErrSealed) {
		t.Fatalf("read without the key: %v", err)
	}
	st, err := snapshot.Latest(ctx, e.stream, e.subject, k, s.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Key != "k1" || st.StreamSeq != ack.StreamSeq || bytes.Contains(st.Data, []byte("Ada")) || ack.Bytes != len(st.Data) {
		t.Fatalf("stored %+v (%d bytes)", st.Meta, len(st.Data))
	}
	got, err := snapshot.Open(k, st.Meta, st.Data)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("opened %d bytes, %v; want the encoding", len(got), err)
	}
	// The next publish chains on the sealed one.
	s2 := stamped(t, 1, "drivers/driver/who", "n1", 1)
	if _, err := p.Publish(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.End(ctx, s.ID, 1, s2.Seq); err != nil {
		t.Fatal(err)
	}
	end, err := snapshot.Latest(ctx, e.stream, e.subject, k, s.ID, nil)
	if err != nil || !end.Tombstone || end.Key != "k1" || len(end.Data) != 28 {
		t.Fatalf("tombstone %+v, %v", end.Meta, err)
	}
}

// TestEraseAndPurge: Erase leaves nothing of a session but a tombstone,
// whatever its newest message was (a valid snapshot of another owner, a
// corrupt message); Purge of the tombstone leaves nothing at all; other
// sessions are untouched.
func TestEraseAndPurge(t *testing.T) {
	e := setup(t)
	owner := e.publisher(t, "n1", nil)
	keep := stamped(t, 9, "vehicle", "n1", 1)
	if _, err := owner.Publish(ctx, keep); err != nil {
		t.Fatal(err)
	}
	count := func(id model.SessionID) (n int, tombstones int) {
		t.Helper()
		subject, _ := e.subject.SessionSubject(string(id))
		for seq := uint64(1); ; {
			raw, err := e.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return n, tombstones
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			if raw.Header.Get(snapshot.HeaderTombstone) == "1" {
				if len(raw.Data) != 0 {
					t.Fatalf("a tombstone with %d bytes", len(raw.Data))
				}
				tombstones++
			}
			seq = raw.Sequence + 1
		}
	}
	for i, spoil := range []bool{false, true} {
		id := modeltest.SessionID(20 + i)
		for _, stop := range []string{"applicant", "vehicle", "drivers/driver/who"} {
			if _, err := owner.Publish(ctx, stamped(t, 20+i, stop, "n1", 1)); err != nil {
				t.Fatal(err)
			}
		}
		if spoil {
			subject, _ := e.subject.SessionSubject(string(id))
			if _, err := e.js.Publish(ctx, subject, []byte("corrupt")); err != nil {
				t.Fatal(err)
			}
		}
		// An operator's tool, at a later epoch, with no idea of the session.
		ack, err := e.publisher(t, "operator", nil).Erase(ctx, id, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n, tombs := count(id); n != 1 || tombs != 1 {
			t.Fatalf("after erase: %d messages, %d tombstones; want only the tombstone", n, tombs)
		}
		st := e.latest(t, id, nil)
		if !st.Tombstone || st.StreamSeq != ack.StreamSeq || st.Node != "operator" {
			t.Fatalf("newest %+v", st.Meta)
		}
		// Erasing again finds the tombstone.
		if again, err := e.publisher(t, "operator", nil).Erase(ctx, id, 2); err != nil || again.StreamSeq != ack.StreamSeq {
			t.Fatalf("erase again: %+v %v", again, err)
		}
		if err := owner.Purge(ctx, id, ack.StreamSeq); err != nil {
			t.Fatal(err)
		}
		if n, _ := count(id); n != 0 {
			t.Fatalf("after purge: %d messages", n)
		}
	}
	if _, err := owner.Erase(ctx, modeltest.SessionID(99), 1); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("erase of a session never published: %v", err)
	}
	if n, _ := count(keep.ID); n != 1 {
		t.Fatalf("another session: %d messages, want 1", n)
	}
}

// A zombie's tombstone above the new owner's fence ended nothing: an erase
// by the new owner writes a tombstone of its own instead of taking the
// fenced one for done (defect 11 of the safety review).
func TestEraseOverAFencedTombstone(t *testing.T) {
	e := setup(t)
	old := e.publisher(t, "n1", nil)
	s := stamped(t, 6, "vehicle", "n1", 1)
	ack, err := old.Publish(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	claims := snapshot.Claims{{Epoch: 1}, {Epoch: 2, Fence: ack.StreamSeq}}
	zombie, err := old.End(ctx, s.ID, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	taker := e.publisher(t, "n2", claims)
	erased, err := taker.Erase(ctx, s.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if erased.Duplicate || erased.StreamSeq == zombie.StreamSeq {
		t.Fatalf("erase took the fenced tombstone at stream seq %d for its own: %+v", zombie.StreamSeq, erased)
	}
	if st := e.latest(t, s.ID, claims); !st.Tombstone || st.StreamSeq != erased.StreamSeq || st.Epoch != 2 {
		t.Fatalf("newest valid after the erase: %+v", st.Meta)
	}
}
