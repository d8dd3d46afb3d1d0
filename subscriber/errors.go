package subscriber

import "errors"

// Sentinel errors. Errors about one session wrap one of these (or one of
// package snapshot's) with the session id and stream sequence.
var (
	// ErrInvalidConfig reports a Config that Validate rejects.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrNotStarted reports a wait on a Subscriber that was never started.
	ErrNotStarted = errors.New("subscriber not started")

	// ErrStarted reports a second Start.
	ErrStarted = errors.New("subscriber already started")

	// ErrPaused reports a wait (DrainTo) on a paused Subscriber: it
	// consumes nothing until Resume.
	ErrPaused = errors.New("subscriber paused")

	// ErrClosed reports Start, or a wait, on a closed Subscriber.
	ErrClosed = errors.New("subscriber closed")

	// ErrQuarantined wraps the error of a session whose newest message on
	// the stream could not be used: it failed validation, or the newest
	// valid snapshot below a fenced one could not be read. The session's
	// previous good snapshot (if any) is still held; a later valid snapshot
	// of the session clears the quarantine.
	ErrQuarantined = errors.New("session quarantined")

	// ErrEnded reports a session whose newest valid message is its
	// tombstone. Errors wrapping it also wrap snapshot.ErrNotFound.
	ErrEnded = errors.New("session ended")
)
