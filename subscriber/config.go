package subscriber

import (
	"fmt"
	"log/slog"
	"time"

	"understudy/broker"
	"understudy/internal/bugs"
	"understudy/model"
	"understudy/snapshot"
)

// Defaults for Config.
const (
	// DefaultMaxEnded is how many ended sessions (their tombstones' stream
	// sequences) the store remembers. The stream delivers in order, so a
	// tombstone only has to outlive the out-of-order reads that may be in
	// flight when it arrives (a catch-up read under a fenced snapshot, a
	// Refence); ten thousand is far more than arrive during one read, and
	// costs under a megabyte.
	DefaultMaxEnded = 10_000

	// DefaultReadTimeout bounds one read from the stream leader made on the
	// consumer's behalf (the newest valid snapshot under a fenced one).
	DefaultReadTimeout = 5 * time.Second
)

// Config configures a Subscriber or a Reader. The zero value reads the
// default prefix's stream with no fencing.
type Config struct {
	// Subjects names the session stream's subjects. Zero value: the
	// default prefix.
	Subjects broker.Subjects

	// Fence judges snapshots by the fence rule; the group supplies it from
	// its history of claims. Default snapshot.NoFence{} (one writer, no
	// failover: tools and tests).
	Fence snapshot.Fence

	// Sealer opens sealed payloads to check them (see snapshot.Sealer); a
	// payload that does not open quarantines its session. What is held is
	// the payload as stored, still sealed: the plaintext of every session
	// does not sit in a backup's memory, and snapshot.Open gives it at
	// promotion. Default: payloads must not be sealed.
	Sealer snapshot.Sealer

	// Logger receives quarantines, messages that are not snapshots, and
	// progress. Payload bytes are never logged. Default slog.Default().
	Logger *slog.Logger

	// OnQuarantine, if set, is called when a session is quarantined, with
	// an error wrapping ErrQuarantined that names the session and says what
	// was wrong. It is called from the consumer's goroutine: it must return
	// quickly and must not call Close.
	OnQuarantine func(id model.SessionID, err error)

	// OnEnded, if set, is called with each tombstone the copy takes from
	// the stream (a session ended; Meta has its stream sequence, epoch and
	// the time the stream stored it): a backup learns this way the
	// histories a primary will have to purge once it is promoted, without
	// reading the stream again then. Tombstones handed over by Own are not
	// passed: their writer knows them. It is called from the goroutine
	// that applied the tombstone: it must return quickly and must not call
	// Close.
	OnEnded func(m snapshot.Meta)

	// MaxEnded bounds how many ended sessions are remembered, so that an
	// older snapshot read out of order cannot bring an ended session back.
	// Default DefaultMaxEnded.
	MaxEnded int

	// ReadTimeout bounds one read from the stream leader made by the
	// consumer. Default DefaultReadTimeout.
	ReadTimeout time.Duration

	// Bugs reintroduce known defects of the backup's copy
	// (QuarantineTransient, FencedIsAbsent), for the tests that show they
	// are found. Never set outside tests.
	Bugs bugs.Set

	// pullMaxBytes makes the consumer pull by bytes, which makes the
	// server skip messages of a catch-up: tests set it to check that the
	// catch-up notices (see catchup.go).
	pullMaxBytes int

	// pullBatch, when set, replaces the count of messages pulled at once
	// (tests: a catch-up whose consumer resets in its middle).
	pullBatch int

	// afterHandle, when set, is called by the consumer's goroutine after
	// each message it handled (tests: a fault at a chosen point).
	afterHandle func(s *Subscriber, streamSeq uint64)
}

// Validate reports a Config that Start would reject.
func (c Config) Validate() error {
	switch {
	case c.MaxEnded < 0:
		return fmt.Errorf("%w: max ended %d, want 0 (default) or more", ErrInvalidConfig, c.MaxEnded)
	case c.ReadTimeout < 0:
		return fmt.Errorf("%w: read timeout %s, want 0 (default) or more", ErrInvalidConfig, c.ReadTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Fence == nil {
		c.Fence = snapshot.NoFence{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxEnded == 0 {
		c.MaxEnded = DefaultMaxEnded
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	return c
}
