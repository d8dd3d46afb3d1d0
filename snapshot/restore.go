package snapshot

import (
	"context"
	"fmt"

	"understudy/cbor"
	"understudy/model"
)

// Session returns the session a stored snapshot carries: its payload
// opened (see Open), decoded, and checked to be st's own session. It is
// the one place stored bytes become a session, for the node, the
// preflight and the benchmarks alike. A tombstone carries none: it is
// ErrNotFound. Errors name the session and the stream sequence; a payload
// that does not open wraps ErrSealed, one that does not decode a
// *cbor.DecodeError, another session's snapshot ErrBadMessage.
func Session(sealer Sealer, st Stored) (*model.Session, error) {
	if st.Tombstone {
		return nil, fmt.Errorf("session %s stream seq %d: %w: a tombstone: the session ended", st.Session, st.StreamSeq, ErrNotFound)
	}
	data, err := Open(sealer, st.Meta, st.Data)
	if err != nil {
		return nil, err
	}
	s, err := cbor.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("session %s stream seq %d: %w", st.Session, st.StreamSeq, err)
	}
	if s.ID != st.Session {
		return nil, fmt.Errorf("session %s stream seq %d: %w: the snapshot is of session %s", st.Session, st.StreamSeq, ErrBadMessage, s.ID)
	}
	return s, nil
}

// Restore rebuilds the application objects of a stored snapshot: Session,
// then the engine's Materialize (which resolves canonical references).
func Restore(ctx context.Context, eng *model.Engine, sealer Sealer, st Stored) (*model.Run, error) {
	s, err := Session(sealer, st)
	if err != nil {
		return nil, err
	}
	return eng.Materialize(ctx, s)
}
