package broker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for StreamConfig.
const (
	// DefaultHistory is how many snapshots per session the stream keeps:
	// the latest is what failover needs; the rest allow replay and
	// inspection.
	DefaultHistory int64 = 16

	// DefaultReplicas suits a single server; a three-server cluster uses 3.
	DefaultReplicas = 1

	// DefaultDuplicates is the window in which JetStream drops a publish
	// whose Nats-Msg-Id it has seen. Snapshots carry none (the expected
	// last subject sequence makes a retry that landed a conflict instead);
	// tools that import with their original ids still use it.
	DefaultDuplicates = 2 * time.Minute

	// DefaultMaxMsgSize bounds one snapshot (with its headers).
	DefaultMaxMsgSize int32 = 1 << 20

	// DefaultMaxAge is a safety net only, far longer than any session
	// lifetime: sessions end with tombstones and are purged by their owner.
	DefaultMaxAge = 30 * 24 * time.Hour

	// MaxReplicas is JetStream's own limit.
	MaxReplicas = 5
)

// StreamConfig is the session stream: one subject per session, the last
// History snapshots of each, on file storage. The zero value is the
// default stream for DefaultPrefix on a single server.
type StreamConfig struct {
	// Subjects gives the stream's name and subjects. Zero value: the
	// default prefix.
	Subjects Subjects

	// Replicas is 1 on a single server, 3 on a cluster (1 to 5).
	// Default DefaultReplicas.
	Replicas int

	// History is how many snapshots per session subject are kept (the
	// stream's MaxMsgsPerSubject). Default DefaultHistory.
	History int64

	// Duplicates is the deduplication window. Default DefaultDuplicates.
	Duplicates time.Duration

	// MaxMsgSize bounds one message. Default DefaultMaxMsgSize.
	MaxMsgSize int32

	// MaxAge removes snapshots older than this. Default DefaultMaxAge.
	MaxAge time.Duration

	// Compression stores messages S2-compressed: less disk, more CPU.
	Compression bool

	// Logger receives the differences EnsureStream tolerates in an
	// existing stream. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports a StreamConfig that EnsureStream would reject.
func (c StreamConfig) Validate() error {
	c = c.withDefaults()
	name := c.Subjects.StreamName()
	switch {
	case c.Replicas < 1 || c.Replicas > MaxReplicas:
		return fmt.Errorf("%w: stream %s: replicas %d, want 1 to %d", ErrInvalidConfig, name, c.Replicas, MaxReplicas)
	case c.History < 1:
		return fmt.Errorf("%w: stream %s: history %d, want at least 1", ErrInvalidConfig, name, c.History)
	case c.Duplicates < 0 || c.MaxMsgSize < 1 || c.MaxAge < 0:
		return fmt.Errorf("%w: stream %s: duplicates %s, max msg size %d, max age %s", ErrInvalidConfig, name, c.Duplicates, c.MaxMsgSize, c.MaxAge)
	case c.Duplicates > c.MaxAge:
		// JetStream refuses it too, less clearly.
		return fmt.Errorf("%w: stream %s: duplicates window %s longer than max age %s", ErrInvalidConfig, name, c.Duplicates, c.MaxAge)
	}
	return nil
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// JetStream returns the jetstream.StreamConfig EnsureStream creates, with
// every limit explicit so it can be compared with a stream's stored
// configuration.
func (c StreamConfig) JetStream() jetstream.StreamConfig {
	c = c.withDefaults()
	compression := jetstream.NoCompression
	if c.Compression {
		compression = jetstream.S2Compression
	}
	return jetstream.StreamConfig{
		Name:        c.Subjects.StreamName(),
		Description: "understudy session snapshots, one subject per session",
		Subjects:    []string{c.Subjects.SessionFilter()},
		Retention:   jetstream.LimitsPolicy,
		// No stream-wide limits: with DiscardOld they would silently drop
		// the only snapshot of a live session. Sessions are bounded by the
		// node's session cap and per-subject history, disk by the server.
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		Discard:           jetstream.DiscardOld,
		MaxAge:            c.MaxAge,
		MaxMsgsPerSubject: c.History,
		MaxMsgSize:        c.MaxMsgSize,
		Storage:           jetstream.FileStorage,
		Replicas:          c.Replicas,
		Duplicates:        c.Duplicates,
		// Operators erase sessions, and owners purge ended ones.
		DenyDelete: false,
		DenyPurge:  false,
		// A rollup header would let one publish erase a session's history.
		AllowRollup: false,
		// Direct get may be answered by a replica that lags the leader,
		// and jetstream.Stream.GetLastMsgForSubject silently switches to
		// it when the stream allows it. Reads made for correctness (the
		// latest snapshot after an unknown publish outcome, cold-standby
		// takeover) must see every acknowledged write, so they must go to
		// the leader: direct get stays off.
		AllowDirect: false,
		Compression: compression,
	}
}
