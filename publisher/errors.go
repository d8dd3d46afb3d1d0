package publisher

import (
	"errors"
	"fmt"

	"understudy/snapshot"
)

// Sentinel errors. Errors returned by Publish name the session and the
// interaction sequence and wrap one of these.
var (
	// ErrFenced: the stream holds a newer, valid snapshot of the session
	// written by another owner. This node must stop serving the session.
	ErrFenced = errors.New("fenced")
	// ErrNotStored: the snapshot is known not to be stored (the broker is
	// unreachable, the publish was refused). The session stays as it was.
	ErrNotStored = errors.New("not stored")
	// ErrUnknownOutcome: the publish got no ack and the stream could not be
	// read to learn whether it was stored. The session's next publish reads
	// the stream first.
	ErrUnknownOutcome = errors.New("publish outcome unknown")
	// ErrTooLarge: the snapshot exceeds the maximum message size.
	ErrTooLarge = errors.New("snapshot too large")
	// ErrClosed: the publisher is closed.
	ErrClosed = errors.New("publisher closed")
)

// DivergedError reports that the stream's newest snapshot of a session was
// written by this node at this epoch but is not the one being published: an
// earlier publish whose outcome was unknown landed after all. The session
// follows the stream: the caller adopts Stored and answers from it.
type DivergedError struct {
	Stored snapshot.Stored
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("session %s: stream holds seq %d at stream seq %d: diverged", e.Stored.Session, e.Stored.Seq, e.Stored.StreamSeq)
}
