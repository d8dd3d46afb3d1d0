package broker

import (
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucketHistory keeps only the current group entry: the lease is a
// compare-and-set on the latest revision, and nothing reads older ones.
const DefaultBucketHistory uint8 = 1

// BucketConfig is the groups bucket: one entry per replication group
// (epoch, owner, address, fence sequence), the lease the primary renews.
// The zero value is the default bucket for DefaultPrefix on a single
// server.
type BucketConfig struct {
	// Subjects gives the bucket's name. Zero value: the default prefix.
	Subjects Subjects

	// Replicas is 1 on a single server, 3 on a cluster (1 to 5).
	// Default DefaultReplicas.
	Replicas int

	// History is how many revisions per key are kept (1 to 64).
	// Default DefaultBucketHistory.
	History uint8

	// Logger receives provisioning events. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports a BucketConfig that EnsureBucket would reject.
func (c BucketConfig) Validate() error {
	c = c.withDefaults()
	name := c.Subjects.GroupsBucket()
	switch {
	case c.Replicas < 1 || c.Replicas > MaxReplicas:
		return fmt.Errorf("%w: bucket %s: replicas %d, want 1 to %d", ErrInvalidConfig, name, c.Replicas, MaxReplicas)
	case c.History > jetstream.KeyValueMaxHistory:
		return fmt.Errorf("%w: bucket %s: history %d, want 1 to %d", ErrInvalidConfig, name, c.History, jetstream.KeyValueMaxHistory)
	}
	return nil
}

func (c BucketConfig) withDefaults() BucketConfig {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.History == 0 {
		c.History = DefaultBucketHistory
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// JetStream returns the jetstream.KeyValueConfig EnsureBucket creates.
func (c BucketConfig) JetStream() jetstream.KeyValueConfig {
	c = c.withDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      c.Subjects.GroupsBucket(),
		Description: "understudy replication groups: owner, epoch, fence; the primary's lease",
		History:     c.History,
		// No TTL: an entry that expired would read as "no owner" and let
		// a backup claim a group whose primary is alive.
		TTL:      0,
		Storage:  jetstream.FileStorage,
		Replicas: c.Replicas,
	}
}
