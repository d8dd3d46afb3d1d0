package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
)

// Publisher publishes session snapshots to the session stream. It is safe
// for concurrent use: publishes of different sessions are pipelined; those
// of one session are serialized, one writer per session at a time.
type Publisher struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    Config
	log    *slog.Logger

	mu       sync.Mutex
	sessions map[model.SessionID]*session

	sem    chan struct{} // async: sessions with a publish in flight
	wg     sync.WaitGroup
	closed bool
}

// session is what the publisher knows of one session's place in the stream.
type session struct {
	mu sync.Mutex // one writer at a time
	// last is the stream sequence of the session's newest message: the
	// expected last subject sequence of its next publish. 0: none.
	last uint64
	// unsure is set when a publish's outcome could not be learned; the
	// next publish first reads the stream.
	unsure bool

	// async: the snapshot waiting behind the one in flight.
	queued  *model.Session
	running bool
}

// Ack says where a snapshot is stored.
type Ack struct {
	StreamSeq uint64
	// Duplicate is set when the snapshot was already stored: a retried
	// publish that had landed.
	Duplicate bool
	// Over is the stream sequence of a fenced snapshot this one was
	// published over, 0 if none.
	Over uint64
	// Bytes is the snapshot's size.
	Bytes int
}

// New returns a publisher writing to stream through js. It does no I/O.
func New(js jetstream.JetStream, stream jetstream.Stream, cfg Config) *Publisher {
	cfg = cfg.withDefaults()
	return &Publisher{
		js: js, stream: stream, cfg: cfg, log: cfg.Logger,
		sessions: map[model.SessionID]*session{},
		sem:      make(chan struct{}, cfg.MaxPending),
	}
}

func (p *Publisher) session(id model.SessionID) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[id]
	if !ok {
		s = &session{}
		p.sessions[id] = s
	}
	return s
}

// Track records that a session's newest message is at stream sequence seq:
// what a promoted backup knows of the sessions it took over.
func (p *Publisher) Track(id model.SessionID, seq uint64) {
	s := p.session(id)
	s.mu.Lock()
	s.last, s.unsure = seq, false
	s.mu.Unlock()
}

// Forget drops what the publisher knows of a session, once it has ended.
func (p *Publisher) Forget(id model.SessionID) {
	p.mu.Lock()
	delete(p.sessions, id)
	p.mu.Unlock()
}

// Reset forgets every session, once this node is no longer the primary:
// what it knew belongs to an epoch that is over, and a promotion tracks
// every session it adopts again.
func (p *Publisher) Reset() {
	p.mu.Lock()
	clear(p.sessions)
	p.mu.Unlock()
}

// Sessions returns how many sessions the publisher tracks.
func (p *Publisher) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// Publish encodes the session and publishes its snapshot, and returns once
// JetStream has acknowledged it: an Ack means the snapshot is stored.
//
// Errors, all naming the session: ErrFenced (another node owns the
// session); *DivergedError (the stream holds a snapshot of this node's that
// it had lost track of: the caller adopts it); ErrNotStored (known not
// stored, e.g. the broker is unreachable); ErrUnknownOutcome (the outcome
// could not be learned: the next publish of the session reads the stream
// first).
func (p *Publisher) Publish(ctx context.Context, s *model.Session) (Ack, error) {
	enc := encoders.Get().(*cbor.Encoder)
	defer encoders.Put(enc)
	data, err := enc.Encode(s)
	if err != nil {
		return Ack{}, err
	}
	meta := snapshot.Meta{Session: s.ID, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion, Finished: s.Finished()}
	if data, err = p.seal(&meta, data); err != nil {
		return Ack{}, err
	}
	return p.publish(ctx, meta, data)
}

// seal seals a payload when the publisher has a Sealer, setting meta.Key.
// The sealed bytes are what is published and sent again by every retry of
// the same publish, so that a retry that finds its first attempt stored
// recognises it (judge: ours).
func (p *Publisher) seal(meta *snapshot.Meta, data []byte) ([]byte, error) {
	if p.cfg.Sealer == nil {
		return data, nil
	}
	sealed, key, err := p.cfg.Sealer.Seal(*meta, data)
	if err != nil {
		return nil, fmt.Errorf("session %s seq %d: %w", meta.Session, meta.Seq, err)
	}
	meta.Key = key
	return sealed, nil
}

// End publishes the session's tombstone: the session ended (finished or
// idle past its lifetime). Backups drop it; its history is purged later.
func (p *Publisher) End(ctx context.Context, id model.SessionID, epoch, seq uint64) (Ack, error) {
	meta := snapshot.Meta{Session: id, Epoch: epoch, Seq: seq, Node: p.cfg.Node, Format: cbor.FormatVersion, Tombstone: true}
	// A sealed tombstone authenticates: with sealing on, a reader takes no
	// tombstone that was not written by a holder of the key.
	data, err := p.seal(&meta, nil)
	if err != nil {
		return Ack{}, err
	}
	ack, err := p.publish(ctx, meta, data)
	if err == nil {
		p.Forget(id)
	}
	return ack, err
}

var encoders = sync.Pool{New: func() any { return cbor.NewEncoder() }}

func (p *Publisher) publish(ctx context.Context, meta snapshot.Meta, data []byte) (Ack, error) {
	subject, err := p.cfg.Subjects.SessionSubject(string(meta.Session))
	if err != nil {
		return Ack{}, fmt.Errorf("session %s: %w", meta.Session, err)
	}
	if len(data) > p.cfg.MaxSnapshot {
		return Ack{}, fmt.Errorf("session %s seq %d: %w: %d bytes, limit %d", meta.Session, meta.Seq, ErrTooLarge, len(data), p.cfg.MaxSnapshot)
	}
	st := p.session(meta.Session)
	st.mu.Lock()
	defer st.mu.Unlock()

	if st.unsure {
		if err := p.resync(ctx, st, meta); err != nil {
			return Ack{}, err
		}
	}
	var over uint64
	for attempt := 0; ; attempt++ {
		meta.Prev = st.last
		msg := &nats.Msg{Subject: subject, Header: meta.Header(data), Data: data}
		if !p.cfg.Bugs.NoExpectedSeq {
			msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(st.last, 10))
		}
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		ack, err := p.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			st.last = ack.Sequence
			p.stored(meta, ack.Sequence, data)
			return Ack{StreamSeq: ack.Sequence, Duplicate: ack.Duplicate, Over: over, Bytes: len(data)}, nil
		}

		var apiErr *jetstream.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant && attempt < p.cfg.Retries:
			// On a replicated stream this may mean a publish to the subject
			// is still in flight: retry before concluding.
			if err := sleep(ctx, p.cfg.RetryWait<<attempt); err != nil {
				return Ack{}, p.notStored(meta, err)
			}
			continue
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			top, rerr := p.top(ctx, meta.Session)
			if rerr != nil {
				st.unsure = true
				return Ack{}, fmt.Errorf("session %s seq %d: %w: conflict at expected seq %d, then %w", meta.Session, meta.Seq, ErrUnknownOutcome, st.last, rerr)
			}
			switch p.judge(meta, data, top) {
			case ours:
				st.last = top.StreamSeq
				p.stored(meta, top.StreamSeq, data)
				return Ack{StreamSeq: top.StreamSeq, Duplicate: true, Over: over, Bytes: len(data)}, nil
			case fenced:
				// A primary that lost the group wrote on top: publish over it.
				p.log.Warn("publishing over a fenced snapshot", "session", meta.Session, "fenced_seq", top.StreamSeq, "fenced_epoch", top.Epoch, "fenced_node", top.Node)
				st.last, over = top.StreamSeq, top.StreamSeq
				if attempt >= p.cfg.Retries+maxFencedHops {
					return Ack{}, fmt.Errorf("session %s seq %d: %w: fenced snapshots keep appearing", meta.Session, meta.Seq, ErrUnknownOutcome)
				}
				continue
			case mine:
				st.last = top.StreamSeq
				p.storedTop(top)
				return Ack{}, &DivergedError{Stored: top}
			default:
				st.last = top.StreamSeq
				return Ack{}, fmt.Errorf("session %s seq %d: %w: stream seq %d is epoch %d seq %d by node %s", meta.Session, meta.Seq, ErrFenced, top.StreamSeq, top.Epoch, top.Seq, top.Node)
			}
		case isUnknownOutcome(err):
			// The publish may have been stored: learn what the stream holds
			// before this session accepts anything else.
			return p.resolve(ctx, st, meta, data, err)
		default:
			return Ack{}, p.notStored(meta, err)
		}
	}
}

// stored tells Config.OnStored of a message stored at streamSeq.
func (p *Publisher) stored(meta snapshot.Meta, streamSeq uint64, data []byte) {
	if p.cfg.OnStored == nil {
		return
	}
	meta.StreamSeq, meta.Time, meta.Size = streamSeq, time.Now(), len(data)
	p.cfg.OnStored(snapshot.Stored{Meta: meta, Data: data})
}

// storedTop tells Config.OnStored of a snapshot of this node's found on
// top of a session: stored after all (a DivergedError).
func (p *Publisher) storedTop(top snapshot.Stored) {
	if p.cfg.OnStored != nil {
		p.cfg.OnStored(top)
	}
}

// testHookResolve, when set by a test, runs as a publish starts resolving
// an unknown outcome.
var testHookResolve func()

// maxFencedHops bounds how many fenced snapshots one publish steps over.
const maxFencedHops = 8

func (p *Publisher) notStored(meta snapshot.Meta, err error) error {
	return fmt.Errorf("session %s seq %d: %w: %w", meta.Session, meta.Seq, ErrNotStored, err)
}

// isUnknownOutcome reports whether a publish error leaves its outcome
// unknown: the request may have reached the stream though no ack came back.
// Errors of a publish that was never sent (disconnected, with the reconnect
// buffer off) are known: not stored.
func isUnknownOutcome(err error) bool {
	switch {
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.Canceled)
}

// resolve learns the outcome of a publish that got no ack by reading the
// session's newest message from the stream leader.
func (p *Publisher) resolve(ctx context.Context, st *session, meta snapshot.Meta, data []byte, cause error) (Ack, error) {
	// The caller's ctx may be what expired; the resolution gets its own
	// budget, bounded by the publisher's timeout.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Timeout)
	defer cancel()
	if testHookResolve != nil {
		testHookResolve()
	}
	top, err := p.top(rctx, meta.Session)
	if err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		st.unsure = true
		p.log.Warn("publish outcome unknown", "session", meta.Session, "seq", meta.Seq, "err", err)
		return Ack{}, fmt.Errorf("session %s seq %d: %w: %w, then %w", meta.Session, meta.Seq, ErrUnknownOutcome, cause, err)
	}
	if err == nil && top.StreamSeq != st.last {
		switch p.judge(meta, data, top) {
		case ours:
			st.last = top.StreamSeq
			p.stored(meta, top.StreamSeq, data)
			return Ack{StreamSeq: top.StreamSeq, Duplicate: true, Bytes: len(data)}, nil
		case mine:
			st.last = top.StreamSeq
			p.storedTop(top)
			return Ack{}, &DivergedError{Stored: top}
		case other:
			st.last = top.StreamSeq
			return Ack{}, fmt.Errorf("session %s seq %d: %w: stream seq %d is epoch %d seq %d by node %s", meta.Session, meta.Seq, ErrFenced, top.StreamSeq, top.Epoch, top.Seq, top.Node)
		}
	}
	// The stream still ends where it did: not stored. If the publish is
	// still in flight and lands later, the session's next publish meets a
	// conflict, finds it, and the caller adopts it (DivergedError).
	return Ack{}, p.notStored(meta, cause)
}

// resync reads the stream after an unknown outcome, before a new publish.
func (p *Publisher) resync(ctx context.Context, st *session, meta snapshot.Meta) error {
	top, err := p.top(ctx, meta.Session)
	if errors.Is(err, snapshot.ErrNotFound) {
		st.last, st.unsure = 0, false
		return nil
	}
	if err != nil {
		return fmt.Errorf("session %s seq %d: %w: earlier outcome still unknown: %w", meta.Session, meta.Seq, ErrNotStored, err)
	}
	st.unsure = false
	if top.StreamSeq == st.last {
		return nil
	}
	st.last = top.StreamSeq
	if p.judge(meta, nil, top) == mine {
		p.storedTop(top)
		return &DivergedError{Stored: top}
	}
	if p.judge(meta, nil, top) == other {
		return fmt.Errorf("session %s seq %d: %w: stream seq %d is epoch %d seq %d by node %s", meta.Session, meta.Seq, ErrFenced, top.StreamSeq, top.Epoch, top.Seq, top.Node)
	}
	return nil
}

// top returns the newest message of a session, judged by the fence rule
// only in that a fenced top is reported as such (see judge).
func (p *Publisher) top(ctx context.Context, id model.SessionID) (snapshot.Stored, error) {
	subject, err := p.cfg.Subjects.SessionSubject(string(id))
	if err != nil {
		return snapshot.Stored{}, err
	}
	raw, err := p.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return snapshot.Stored{}, fmt.Errorf("session %s: %w", id, snapshot.ErrNotFound)
	}
	if err != nil {
		return snapshot.Stored{}, fmt.Errorf("session %s: read last snapshot: %w", id, err)
	}
	st, err := snapshot.FromRaw(p.cfg.Subjects, p.cfg.Sealer, raw)
	if err != nil {
		// A message that is not a valid snapshot cannot be a newer owner's:
		// a reader ignores it like a fenced one.
		p.log.Error("invalid message on top of a session", "session", id, "stream_seq", raw.Sequence, "err", err)
		st.StreamSeq = raw.Sequence
		st.Epoch = 0
	}
	return st, nil
}

type verdict int

const (
	other  verdict = iota // a valid snapshot by another owner: we are fenced
	ours                  // this very snapshot: it was stored
	mine                  // a valid snapshot this node wrote at this epoch, not this one
	fenced                // written by a primary that lost the group, or not a valid snapshot
)

func (p *Publisher) judge(meta snapshot.Meta, data []byte, top snapshot.Stored) verdict {
	switch {
	case top.Epoch == 0 || p.cfg.Fence.Fenced(top.Epoch, top.StreamSeq):
		return fenced
	case data != nil && top.Epoch == meta.Epoch && top.Seq == meta.Seq && top.Tombstone == meta.Tombstone && bytes.Equal(data, top.Data):
		return ours
	case top.Epoch == meta.Epoch && top.Node == p.cfg.Node:
		return mine
	}
	return other
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
