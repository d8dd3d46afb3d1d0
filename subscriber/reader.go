package subscriber

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/model"
	"understudy/snapshot"
)

const (
	// readAllInactive is the inactivity threshold of ReadAll's consumer:
	// the server removes it soon if ReadAll's process dies before
	// deleting it.
	readAllInactive = 30 * time.Second

	// readAllStall is how long ReadAll waits for a message before it
	// concludes the consumer has nothing more to give.
	readAllStall = 2 * time.Second
)

// Reader is the cold-standby read path: a backup that holds no copies
// (snapshots stay in the shared stream) reads each session's newest valid
// snapshot only when it takes over. Every read goes to the stream leader.
// It holds nothing and is safe for concurrent use.
type Reader struct {
	stream   jetstream.Stream
	subjects broker.Subjects
	fence    snapshot.Fence
	sealer   snapshot.Sealer
	log      *slog.Logger

	pullMaxBytes int // see Config.pullMaxBytes
}

// NewReader returns a Reader of stream (the session stream). It uses
// cfg's Subjects, Fence, Sealer and Logger. It does no I/O.
func NewReader(stream jetstream.Stream, cfg Config) *Reader {
	c := cfg.withDefaults()
	return &Reader{stream: stream, subjects: c.Subjects, fence: c.Fence, sealer: c.Sealer, log: c.Logger, pullMaxBytes: c.pullMaxBytes}
}

// ReadLatest reads the newest valid snapshot of session id from the stream
// leader, walking back over fenced ones (snapshot.Latest). An ended
// session is reported with an error wrapping both ErrEnded and
// snapshot.ErrNotFound; a session never published with one wrapping
// snapshot.ErrNotFound.
func (r *Reader) ReadLatest(ctx context.Context, id model.SessionID) (snapshot.Stored, error) {
	st, err := snapshot.Latest(ctx, r.stream, r.subjects, r.sealer, id, r.fence)
	if err != nil {
		return snapshot.Stored{}, err
	}
	if st.Tombstone {
		return snapshot.Stored{}, fmt.Errorf("session %s stream seq %d: %w: %w", id, st.StreamSeq, ErrEnded, snapshot.ErrNotFound)
	}
	return st, nil
}

// ReadAll calls fn with the newest valid snapshot of every live session in
// the stream, holding none of them: an ordered consumer delivers each
// session's newest message, and ReadAll stops once it has been given
// everything the stream held when it started. It applies the subscriber's
// rules: an ended session is skipped; for a session whose newest message is
// fenced, the newest valid one is read from the stream leader
// (snapshot.Latest). Like a catch-up, it checks that it was given every
// session, and reads any it was not from the stream leader (see
// catchup.go).
//
// A session whose newest message is invalid is skipped and reading goes
// on, so that one corrupt session does not stop a takeover: the sessions'
// errors (wrapping snapshot.ErrBadMessage or the read's error) are
// returned together at the end. An error from fn stops ReadAll and is
// returned as is.
//
// A session published while ReadAll runs may be passed to fn twice, the
// newer snapshot last. fn may keep the Stored it is given.
func (r *Reader) ReadAll(ctx context.Context, fn func(snapshot.Stored) error) error {
	cons, err := r.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{r.subjects.SessionFilter()},
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		InactiveThreshold: readAllInactive,
	})
	if err != nil {
		return fmt.Errorf("read all sessions: create consumer: %w", err)
	}
	defer r.deleteConsumer(cons)
	if cons.CachedInfo().NumPending == 0 {
		return nil
	}
	start, err := readStartPoint(ctx, r.stream)
	if err != nil {
		return fmt.Errorf("read all sessions: %w", err)
	}
	iter, err := cons.Messages(pullOpts(r.pullMaxBytes)...)
	if err != nil {
		return fmt.Errorf("read all sessions: consume: %w", err)
	}
	defer iter.Stop()

	seen := newSubjectSet()
	var bad []error
	for {
		nctx, cancel := context.WithTimeout(ctx, readAllStall)
		msg, err := iter.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			break // stalled: what was not given is read below
		}
		if err != nil {
			return fmt.Errorf("read all sessions: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			bad = append(bad, fmt.Errorf("subject %q: %w", trunc(msg.Subject()), err))
			continue
		}
		if md.Sequence.Stream > start.lastSeq {
			break
		}
		seen.add(msg.Subject())
		m, err := snapshot.ParseMeta(r.subjects, r.sealer, msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
		st := snapshot.Stored{Meta: m, Data: msg.Data()}
		if err == nil && r.fence.Fenced(m.Epoch, m.StreamSeq) {
			st, err = r.below(ctx, m)
		}
		if err := r.take(st, err, fn, &bad); err != nil {
			return err
		}
		if md.NumPending == 0 || md.Sequence.Stream >= start.lastSeq {
			break
		}
	}

	missing, err := missingSubjects(ctx, r.stream, r.subjects.SessionFilter(), seen, start.subjects)
	if err != nil {
		return fmt.Errorf("read all sessions: list subjects: %w", err)
	}
	if len(missing) > 0 {
		r.log.Warn("read all: not given every session: reading them one by one", "missing", len(missing), "subjects", start.subjects)
	}
	for _, subject := range missing {
		raw, err := r.subjects.SessionID(subject)
		var id model.SessionID
		if err == nil {
			id, err = model.ParseSessionID(raw)
		}
		var st snapshot.Stored
		if err == nil {
			st, err = snapshot.Latest(ctx, r.stream, r.subjects, r.sealer, id, r.fence)
			if errors.Is(err, snapshot.ErrNotFound) {
				st, err = snapshot.Stored{}, nil
			}
		} else {
			err = fmt.Errorf("subject %q: %w: %w", trunc(subject), snapshot.ErrBadMessage, err)
		}
		if err := r.take(st, err, fn, &bad); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("read all sessions: %d not read: %w", len(bad), errors.Join(bad...))
	}
	return nil
}

// take passes a session's newest valid snapshot to fn, skips an ended
// session (or one with only fenced snapshots: a zero st), and collects a
// session's error in bad. It returns fn's error.
func (r *Reader) take(st snapshot.Stored, err error, fn func(snapshot.Stored) error, bad *[]error) error {
	switch {
	case err != nil:
		r.log.Warn("session not read", "session", st.Session, "stream_seq", st.StreamSeq, "err", err)
		*bad = append(*bad, err)
	case st.Session == "" || st.Tombstone:
	default:
		return fn(st)
	}
	return nil
}

// below returns the newest valid snapshot of a session whose newest
// message m is fenced; a zero Stored if there is none.
func (r *Reader) below(ctx context.Context, m snapshot.Meta) (snapshot.Stored, error) {
	if m.Prev == 0 {
		return snapshot.Stored{}, nil
	}
	st, err := snapshot.Latest(ctx, r.stream, r.subjects, r.sealer, m.Session, r.fence)
	if errors.Is(err, snapshot.ErrNotFound) {
		return snapshot.Stored{}, nil
	}
	return st, err
}

func (r *Reader) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	if err := r.stream.DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.log.Debug("delete consumer", "consumer", info.Name, "err", err)
	}
}
