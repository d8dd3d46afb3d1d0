package subscriber_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/snapshot"
	"understudy/subscriber"
)

// testTimeout bounds every test's I/O; generous because the machine may be
// busy.
const testTimeout = 30 * time.Second

// stages are the pages a test session is driven to, one snapshot each.
var stages = []string{"vehicle", "drivers/driver/who", "payment/method", "confirm", ""}

// env is one embedded NATS server with the session stream, and a primary
// that publishes to it the way package publisher does. It remembers what
// it published, so a test knows the newest valid snapshot of every session.
type env struct {
	tb     testing.TB
	ctx    context.Context
	srv    *brokertest.Server
	js     jetstream.JetStream
	stream jetstream.Stream
	subj   broker.Subjects
	eng    *model.Engine

	mu   sync.Mutex
	last map[model.SessionID]uint64 // each subject's last stream sequence: the next publish's Prev
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	// Tests check what is delivered, not durability: fsync in the
	// background.
	srv := brokertest.Start(tb, brokertest.WithSyncInterval(time.Minute))
	js := srv.JetStream(tb)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	return &env{tb: tb, ctx: ctx, srv: srv, js: js, stream: stream, eng: modeltest.Engine(), last: make(map[model.SessionID]uint64)}
}

// session returns quote session n driven to stages[stage]: each stage is a
// later interaction with a larger snapshot.
func (e *env) session(n, stage int) *model.Session {
	e.tb.Helper()
	run, _, err := modeltest.Drive(e.ctx, e.eng, modeltest.SessionID(n), 1+n%3, stages[stage%len(stages)])
	if err != nil {
		e.tb.Fatal(err)
	}
	return run.Session()
}

// as returns a copy of s written by node at epoch (a shallow copy: the
// encoder only reads it).
func as(s *model.Session, node string, epoch uint64) *model.Session {
	c := *s
	c.Node, c.Epoch = node, epoch
	return &c
}

// publish publishes s as a primary does: CBOR, the snapshot headers with
// Prev, and the expected last subject sequence. It returns the stored
// message.
func (e *env) publish(s *model.Session) snapshot.Stored {
	e.tb.Helper()
	data, err := cbor.Marshal(s)
	if err != nil {
		e.tb.Fatal(err)
	}
	return e.publishMeta(snapshot.Meta{Session: s.ID, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion}, data)
}

// end publishes session id's tombstone.
func (e *env) end(id model.SessionID, node string, epoch, seq uint64) snapshot.Stored {
	e.tb.Helper()
	return e.publishMeta(snapshot.Meta{Session: id, Epoch: epoch, Seq: seq, Node: node, Format: cbor.FormatVersion, Tombstone: true}, nil)
}

func (e *env) publishMeta(m snapshot.Meta, data []byte) snapshot.Stored {
	e.tb.Helper()
	e.mu.Lock()
	m.Prev = e.last[m.Session]
	e.mu.Unlock()
	h := m.Header(data)
	h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(m.Prev, 10))
	return e.publishRaw(e.subject(m.Session), h, data, m)
}

// publishRaw publishes a message as given (for corrupt ones), and records
// it as its session's last.
func (e *env) publishRaw(subject string, h nats.Header, data []byte, m snapshot.Meta) snapshot.Stored {
	e.tb.Helper()
	ack, err := e.js.PublishMsg(e.ctx, &nats.Msg{Subject: subject, Header: h, Data: data})
	if err != nil {
		e.tb.Fatalf("publish %s: %v", subject, err)
	}
	if m.Session != "" {
		e.mu.Lock()
		e.last[m.Session] = ack.Sequence
		e.mu.Unlock()
	}
	m.StreamSeq, m.Size = ack.Sequence, len(data)
	return snapshot.Stored{Meta: m, Data: data}
}

func (e *env) subject(id model.SessionID) string {
	s, err := e.subj.SessionSubject(string(id))
	if err != nil {
		e.tb.Fatal(err)
	}
	return s
}

// lastSeq returns the stream's last sequence, as a promoting backup reads
// it.
func (e *env) lastSeq() uint64 {
	e.tb.Helper()
	info, err := e.stream.Info(e.ctx)
	if err != nil {
		e.tb.Fatal(err)
	}
	return info.State.LastSeq
}

// start starts a subscriber with cfg (Logger defaults to the test's) and
// closes it when the test ends.
func (e *env) start(cfg subscriber.Config) *subscriber.Subscriber {
	e.tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = brokertest.Logger(e.tb)
	}
	sub := subscriber.New(e.js, e.stream, cfg)
	if err := sub.Start(e.ctx); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := sub.Close(ctx); err != nil {
			e.tb.Errorf("close: %v", err)
		}
	})
	return sub
}

// caughtUp starts a subscriber and waits until it has caught up.
func (e *env) caughtUp(cfg subscriber.Config) *subscriber.Subscriber {
	e.tb.Helper()
	sub := e.start(cfg)
	if err := sub.WaitCaughtUp(e.ctx); err != nil {
		e.tb.Fatal(err)
	}
	return sub
}

// drain waits until sub has handled everything in the stream.
func (e *env) drain(sub *subscriber.Subscriber) {
	e.tb.Helper()
	if err := sub.DrainTo(e.ctx, e.lastSeq()); err != nil {
		e.tb.Fatal(err)
	}
}

// want is what a backup should hold: the newest valid snapshot per live
// session.
type want map[model.SessionID]snapshot.Stored

func (w want) put(st snapshot.Stored)  { w[st.Session] = st }
func (w want) drop(id model.SessionID) { delete(w, id) }
func (w want) clone() want {
	c := make(want, len(w))
	for k, v := range w {
		c[k] = v
	}
	return c
}
func (w want) bytes() (n int64) {
	for _, st := range w {
		n += int64(len(st.Data))
	}
	return n
}
func sameStored(a, b snapshot.Stored) bool { return diffStored(a, b) == "" }

// diffStored compares what a backup holds with what was published: the
// same bytes from the same stream sequence, with the same meta.
func diffStored(got, want snapshot.Stored) string {
	switch {
	case got.Session != want.Session:
		return fmt.Sprintf("session %s, want %s", got.Session, want.Session)
	case got.StreamSeq != want.StreamSeq:
		return fmt.Sprintf("stream seq %d, want %d", got.StreamSeq, want.StreamSeq)
	case !bytes.Equal(got.Data, want.Data):
		return fmt.Sprintf("%d bytes differ from the %d published", len(got.Data), len(want.Data))
	case got.Epoch != want.Epoch || got.Seq != want.Seq || got.Node != want.Node || got.Format != want.Format || got.Size != len(want.Data):
		return fmt.Sprintf("meta epoch %d seq %d node %q format %d size %d, want %d %d %q %d %d",
			got.Epoch, got.Seq, got.Node, got.Format, got.Size, want.Epoch, want.Seq, want.Node, want.Format, len(want.Data))
	case got.Tombstone:
		return "a tombstone"
	}
	return ""
}

// checkHolds fails unless sub holds exactly w.
func checkHolds(tb testing.TB, what string, sub *subscriber.Subscriber, w want) {
	tb.Helper()
	for id, st := range w {
		got, ok := sub.Get(id)
		if !ok {
			tb.Errorf("%s: session %s not held, want stream seq %d", what, id, st.StreamSeq)
			continue
		}
		if d := diffStored(got, st); d != "" {
			tb.Errorf("%s: session %s: %s", what, id, d)
		}
	}
	n := 0
	sub.Range(func(st snapshot.Stored) bool {
		n++
		if _, ok := w[st.Session]; !ok {
			tb.Errorf("%s: holds session %s (stream seq %d), want it absent", what, st.Session, st.StreamSeq)
		}
		return true
	})
	if n != len(w) || sub.Len() != len(w) {
		tb.Errorf("%s: Range saw %d sessions, Len %d, want %d", what, n, sub.Len(), len(w))
	}
	if got := sub.HeldBytes(); got != w.bytes() {
		tb.Errorf("%s: HeldBytes %d, want %d", what, got, w.bytes())
	}
}

// checkReads fails unless ReadLatest and ReadAll find exactly w.
func checkReads(tb testing.TB, ctx context.Context, r interface {
	ReadLatest(context.Context, model.SessionID) (snapshot.Stored, error)
	ReadAll(context.Context, func(snapshot.Stored) error) error
}, w want) {
	tb.Helper()
	for id, st := range w {
		got, err := r.ReadLatest(ctx, id)
		if err != nil {
			tb.Errorf("ReadLatest %s: %v", id, err)
		} else if d := diffStored(got, st); d != "" {
			tb.Errorf("ReadLatest %s: %s", id, d)
		}
	}
	seen := make(want)
	err := r.ReadAll(ctx, func(st snapshot.Stored) error {
		if _, dup := seen[st.Session]; dup {
			return fmt.Errorf("session %s twice", st.Session)
		}
		seen.put(st)
		return nil
	})
	if err != nil {
		tb.Errorf("ReadAll: %v", err)
	}
	for id, st := range w {
		if got, ok := seen[id]; !ok {
			tb.Errorf("ReadAll: session %s missing", id)
		} else if d := diffStored(got, st); d != "" {
			tb.Errorf("ReadAll: session %s: %s", id, d)
		}
	}
	for id := range seen {
		if _, ok := w[id]; !ok {
			tb.Errorf("ReadAll: session %s, want it absent", id)
		}
	}
}

// fenceVar is a fence the test changes, as the group's does when a claim
// appears.
type fenceVar struct {
	mu     sync.Mutex
	claims snapshot.Claims
}

func (f *fenceVar) Fenced(epoch, streamSeq uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.claims.Fenced(epoch, streamSeq)
}

func (f *fenceVar) claim(epoch, fence uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims = append(f.claims, snapshot.Claim{Epoch: epoch, Fence: fence})
}

var _ snapshot.Fence = (*fenceVar)(nil)

// isNotFound reports an error a read returns for a session with nothing
// valid to read.
func isNotFound(err error) bool { return errors.Is(err, snapshot.ErrNotFound) }
