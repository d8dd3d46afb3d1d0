package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/model"
)

// Stored is a snapshot as the stream holds it.
type Stored struct {
	Meta
	Data []byte // the CBOR snapshot as stored, sealed if Key is set (see Open); empty for a tombstone
}

// maxWalk bounds the walk back over fenced snapshots: the stream keeps a
// bounded history per session, so a longer walk finds nothing anyway.
const maxWalk = 256

// Latest reads the newest valid snapshot of a session from the stream
// leader (never a direct get, which may be answered by a lagging replica),
// walking back over fenced snapshots. A tombstone is returned as the newest
// snapshot with Tombstone set. It returns ErrNotFound when the session has
// no valid snapshot. Sealed payloads are checked with sealer (see
// ParseMeta).
func Latest(ctx context.Context, stream jetstream.Stream, subjects broker.Subjects, sealer Sealer, id model.SessionID, fence Fence) (Stored, error) {
	subject, err := subjects.SessionSubject(string(id))
	if err != nil {
		return Stored{}, fmt.Errorf("session %s: %w", id, err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Stored{}, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Stored{}, fmt.Errorf("session %s: read last snapshot: %w", id, err)
	}
	for range maxWalk {
		st, err := FromRaw(subjects, sealer, raw)
		if err != nil {
			return st, err
		}
		if fence == nil || !fence.Fenced(st.Epoch, st.StreamSeq) {
			return st, nil
		}
		if st.Prev == 0 {
			return Stored{}, fmt.Errorf("session %s: only fenced snapshots: %w", id, ErrNotFound)
		}
		prev := st.Prev
		raw, err = stream.GetMsg(ctx, prev)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Stored{}, fmt.Errorf("session %s: stream seq %d below fenced seq %d: %w", id, prev, st.StreamSeq, ErrHistoryLost)
		}
		if err != nil {
			return Stored{}, fmt.Errorf("session %s: read stream seq %d: %w", id, prev, err)
		}
		if raw.Subject != subject {
			return Stored{}, fmt.Errorf("session %s: stream seq %d below fenced seq %d is another subject: %w", id, prev, st.StreamSeq, ErrBadMessage)
		}
	}
	return Stored{}, fmt.Errorf("session %s: more than %d fenced snapshots: %w", id, maxWalk, ErrHistoryLost)
}

// FromRaw checks a message read from the stream (see ParseMeta) and
// returns it as Stored.
func FromRaw(subjects broker.Subjects, sealer Sealer, raw *jetstream.RawStreamMsg) (Stored, error) {
	m, err := ParseMeta(subjects, sealer, raw.Subject, raw.Header, raw.Data, raw.Sequence, raw.Time)
	if err != nil {
		return Stored{Meta: m}, err
	}
	return Stored{Meta: m, Data: raw.Data}, nil
}
