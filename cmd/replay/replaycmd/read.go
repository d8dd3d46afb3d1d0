package replaycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/group"
	"understudy/model"
	"understudy/snapshot"
)

// message is one message of a session subject as the tool judges it.
type message struct {
	snapshot.Meta
	Subject string
	Header  nats.Header
	Data    []byte
	// Err is set when the message is not a valid snapshot message; Meta
	// then holds what its headers said.
	Err error
	// Fenced: written by a primary that had lost the group (the fence
	// rule, judged with the group entry's claims).
	Fenced bool
	// sealer opens a sealed payload (-key); nil without one.
	sealer snapshot.Sealer
}

// valid reports a message a reader would use: a well-formed snapshot or
// tombstone, not fenced.
func (m message) valid() bool { return m.Err == nil && !m.Fenced }

// state is the message's judgement in one word.
func (m message) state() string {
	switch {
	case m.Err != nil:
		return "bad"
	case m.Fenced:
		return "fenced"
	case m.Tombstone:
		return "ended"
	}
	return "valid"
}

// judge checks a stored message and applies the fence rule.
func judge(subjects broker.Subjects, sealer snapshot.Sealer, fence snapshot.Fence, subject string, h nats.Header, data []byte, seq uint64, t time.Time) message {
	meta, err := snapshot.ParseMeta(subjects, sealer, subject, h, data, seq, t)
	if meta.StreamSeq == 0 {
		meta.StreamSeq, meta.Time, meta.Size = seq, t, len(data)
	}
	m := message{Meta: meta, Subject: subject, Header: h, Data: data, Err: err, sealer: sealer}
	if fence != nil && meta.Epoch > 0 {
		m.Fenced = fence.Fenced(meta.Epoch, seq)
	}
	return m
}

func (c *conn) judgeRaw(fence snapshot.Fence, raw *jetstream.RawStreamMsg) message {
	return judge(c.subjects, c.sealer, fence, raw.Subject, raw.Header, raw.Data, raw.Sequence, raw.Time)
}

// groupEntry reads the group's entry from the groups bucket: nil when the
// bucket or the entry does not exist (nothing to fence by). Its claims
// judge fenced snapshots.
func (c *conn) groupEntry(ctx context.Context, name string) (*group.Entry, error) {
	kv, err := c.js.KeyValue(ctx, c.subjects.GroupsBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", c.subjects.GroupsBucket(), err)
	}
	kve, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", name, err)
	}
	var e group.Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return nil, fmt.Errorf("group %s: entry revision %d: %w", name, kve.Revision(), err)
	}
	e.Revision = kve.Revision()
	return &e, nil
}

// fence returns the claims of the group the flags name.
func (f *flags) fence(ctx context.Context, c *conn) (snapshot.Claims, error) {
	e, err := c.groupEntry(ctx, *f.group)
	if err != nil || e == nil {
		return nil, err
	}
	return e.Claims, nil
}

// maxHistory bounds how many messages of one session are read: far more
// than any stream keeps per subject.
const maxHistory = 4096

// history reads every kept message of a session from the stream leader,
// oldest first. ErrNoSession when there is none.
func (c *conn) history(ctx context.Context, stream jetstream.Stream, fence snapshot.Fence, id model.SessionID) ([]message, error) {
	subject, err := c.subjects.SessionSubject(string(id))
	if err != nil {
		return nil, err
	}
	var out []message
	for seq := uint64(1); len(out) < maxHistory; {
		raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("session %s: read stream seq %d on: %w", id, seq, err)
		}
		out = append(out, c.judgeRaw(fence, raw))
		seq = raw.Sequence + 1
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("session %s: %w (stream %s)", id, ErrNoSession, c.subjects.StreamName())
	}
	return out, nil
}

// discarded reports whether older messages of the session were discarded
// (or purged): the oldest kept one names a previous message.
func discarded(h []message) bool {
	return len(h) > 0 && h[0].Prev != 0
}

// selector says which snapshot of a session a command wants.
type selector struct {
	seq       int64 // interaction sequence; -1: not given
	streamSeq uint64
}

func (s selector) String() string {
	switch {
	case s.streamSeq > 0:
		return fmt.Sprintf("stream seq %d", s.streamSeq)
	case s.seq >= 0:
		return fmt.Sprintf("seq %d", s.seq)
	}
	return "the newest valid snapshot"
}

// pick chooses a message from a session's history: by stream sequence, by
// interaction sequence (the valid one, or the newest fenced one if there
// is no valid one), or by default the newest valid snapshot that is not a
// tombstone (or, if there is none, the newest message).
func (c *conn) pick(ctx context.Context, stream jetstream.Stream, id model.SessionID, h []message, sel selector) (message, error) {
	switch {
	case sel.streamSeq > 0:
		for _, m := range h {
			if m.StreamSeq == sel.streamSeq {
				return m, nil
			}
		}
		raw, err := stream.GetMsg(ctx, sel.streamSeq)
		switch {
		case err == nil:
			return message{}, fmt.Errorf("session %s: stream seq %d is not one of its snapshots (subject %s): %w", id, sel.streamSeq, raw.Subject, ErrNoSnapshot)
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return message{}, fmt.Errorf("session %s: read stream seq %d: %w", id, sel.streamSeq, err)
		case sel.streamSeq < h[0].StreamSeq:
			return message{}, fmt.Errorf("session %s: stream seq %d: %w (kept: %s)", id, sel.streamSeq, ErrDiscarded, kept(h))
		}
		return message{}, fmt.Errorf("session %s: stream seq %d: %w in the stream (kept: %s)", id, sel.streamSeq, ErrNoSnapshot, kept(h))

	case sel.seq >= 0:
		// A tombstone carries the session's last seq too: prefer the
		// snapshot, and a valid one over a fenced one.
		var found, fenced, tomb *message
		for i := range h {
			m := &h[i]
			switch {
			case m.Err != nil || uint64(sel.seq) != m.Seq:
			case m.Tombstone:
				tomb = m
			case m.Fenced:
				fenced = m
			default:
				found = m
			}
		}
		if found == nil {
			found = fenced
		}
		if found == nil {
			found = tomb
		}
		if found != nil {
			return *found, nil
		}
		if first := firstValid(h); discarded(h) && (first == nil || uint64(sel.seq) < first.Seq) {
			return message{}, fmt.Errorf("session %s: seq %d: %w (kept: %s)", id, sel.seq, ErrDiscarded, kept(h))
		}
		return message{}, fmt.Errorf("session %s: seq %d: %w (kept: %s)", id, sel.seq, ErrNoSnapshot, kept(h))
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].valid() && !h[i].Tombstone {
			return h[i], nil
		}
	}
	return h[len(h)-1], nil
}

func firstValid(h []message) *message {
	for i := range h {
		if h[i].Err == nil && !h[i].Tombstone {
			return &h[i]
		}
	}
	return nil
}

// kept describes a session's kept history in a few words.
func kept(h []message) string {
	var lo, hi *message
	for i := range h {
		if h[i].Err == nil && !h[i].Tombstone {
			if lo == nil {
				lo = &h[i]
			}
			hi = &h[i]
		}
	}
	s := fmt.Sprintf("%d messages, stream seqs %d-%d", len(h), h[0].StreamSeq, h[len(h)-1].StreamSeq)
	if lo != nil {
		s += fmt.Sprintf(", interaction seqs %d-%d", lo.Seq, hi.Seq)
	}
	if discarded(h) {
		s += ", older ones discarded"
	}
	return s
}

// payload returns the CBOR snapshot a message carries. It is the one
// place a message's bytes become a snapshot's: a sealed payload is opened
// here with the -key file, before cbor.Decode and before the diagnostic
// notation.
func payload(m message) ([]byte, error) {
	if m.Tombstone {
		return nil, nil
	}
	data, err := snapshot.Open(m.sealer, m.Meta, m.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return data, nil
}

// decode decodes a message's snapshot (snapshot.Session, the path the
// node restores by). A tombstone is snapshot.ErrNotFound.
func decode(m message) (*model.Session, error) {
	s, err := snapshot.Session(m.sealer, snapshot.Stored{Meta: m.Meta, Data: m.Data})
	if err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return s, err
}

// sessionView is one session's kept history, read over a connection that
// the caller closes.
type sessionView struct {
	c      *conn
	stream jetstream.Stream
	claims snapshot.Claims
	msgs   []message
}

// openSession connects and reads a session's kept history, judged by the
// group's claims as every reader judges it.
func (f *flags) openSession(ctx context.Context, id model.SessionID) (*sessionView, error) {
	c, err := f.connect(ctx)
	if err != nil {
		return nil, err
	}
	v := &sessionView{c: c}
	if v.stream, err = c.stream(ctx); err == nil {
		if v.claims, err = f.fence(ctx, c); err == nil {
			v.msgs, err = c.history(ctx, v.stream, v.claims, id)
		}
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return v, nil
}
