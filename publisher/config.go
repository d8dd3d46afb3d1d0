package publisher

import (
	"fmt"
	"log/slog"
	"time"

	"understudy/broker"
	"understudy/internal/bugs"
	"understudy/snapshot"
)

// Defaults for Config.
const (
	// DefaultTimeout bounds one publish's wait for its ack. A sync publish
	// holds a user's answer, so it is bounded well below an HTTP timeout.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxPending bounds the sessions with an async publish in flight.
	DefaultMaxPending = 1024
	// DefaultRetries is how often a replicated stream's "publish still in
	// flight" conflict (10164) is retried before it counts as a conflict.
	DefaultRetries = 4
	// DefaultRetryWait is the first pause before such a retry; it doubles.
	DefaultRetryWait = 5 * time.Millisecond
	// DefaultMaxSnapshot is the stream's default maximum message size.
	DefaultMaxSnapshot = 1 << 20
)

// Config configures a Publisher.
type Config struct {
	// Subjects names the session subjects.
	Subjects broker.Subjects
	// Node is this node's name, as its snapshots carry it.
	Node string
	// Fence judges snapshots found on top of a session (the group's
	// claims). Default snapshot.NoFence.
	Fence snapshot.Fence
	// Timeout bounds one publish's wait for its ack. Default DefaultTimeout.
	Timeout time.Duration
	// MaxPending bounds the sessions with an async publish in flight;
	// PublishAsync blocks beyond it. Default DefaultMaxPending.
	MaxPending int
	// OnAsyncError receives the outcome of every async publish that
	// failed. Required for PublishAsync.
	OnAsyncError func(err error)
	// Retries and RetryWait govern retries of a 10164 conflict.
	Retries   int
	RetryWait time.Duration
	// MaxSnapshot refuses larger snapshots before publishing them; keep it
	// at or below the stream's maximum message size.
	MaxSnapshot int
	// Sealer, if set, seals every payload after encoding (see
	// snapshot.Sealer), tombstones included, and opens what the publisher
	// reads back from the stream. Default: payloads are not sealed.
	Sealer snapshot.Sealer
	// OnStored, if set, is told of every message the publisher knows is
	// stored, where the stream stored it: a snapshot acknowledged (or
	// found stored after a retry or an unknown outcome), a tombstone. Its
	// Data is valid only during the call; Time is when the publisher
	// learned of it. A paused subscriber's Own keeps a primary's copy with
	// it. It must not block.
	OnStored func(snapshot.Stored)
	// Logger receives warnings (fenced snapshots published over, unknown
	// outcomes). Default slog.Default().
	Logger *slog.Logger
	// Bugs reintroduce known defects for the tests that show the checkers
	// find them (NoExpectedSeq); the zero value is production.
	Bugs bugs.Set
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := broker.ValidToken(c.Node); err != nil {
		return fmt.Errorf("publisher: node name: %w", err)
	}
	if c.Timeout < 0 || c.MaxPending < 0 || c.Retries < 0 || c.RetryWait < 0 || c.MaxSnapshot < 0 {
		return fmt.Errorf("publisher: negative setting")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Fence == nil {
		c.Fence = snapshot.NoFence{}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.RetryWait == 0 {
		c.RetryWait = DefaultRetryWait
	}
	if c.MaxSnapshot == 0 {
		c.MaxSnapshot = DefaultMaxSnapshot
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
