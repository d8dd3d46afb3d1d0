package snapshot

import "errors"

// Sentinel errors.
var (
	// ErrBadMessage: a message on the session stream that is not a valid
	// snapshot of the session its subject names.
	ErrBadMessage = errors.New("bad snapshot message")
	// ErrNotFound: the stream holds no valid snapshot of the session.
	ErrNotFound = errors.New("no snapshot")
	// ErrHistoryLost: the newest valid snapshot was discarded from the
	// stream's per-session history (more fenced snapshots than history
	// sit on top of it).
	ErrHistoryLost = errors.New("valid snapshot no longer in the stream")
)
