package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Provision ensures the session stream and the groups bucket exist,
// retrying with backoff until they do or ctx ends: a process may start
// before NATS has a JetStream leader (a cluster elects one in seconds).
// An incompatible stream or bucket is not retried: it needs an operator.
func Provision(ctx context.Context, js jetstream.JetStream, sc StreamConfig, bc BucketConfig, log *slog.Logger) (jetstream.Stream, jetstream.KeyValue, error) {
	if log == nil {
		log = slog.Default()
	}
	wait := 100 * time.Millisecond
	for {
		stream, err := EnsureStream(ctx, js, sc)
		var kv jetstream.KeyValue
		if err == nil {
			kv, err = EnsureBucket(ctx, js, bc)
		}
		switch {
		case err == nil:
			return stream, kv, nil
		case errors.Is(err, ErrIncompatibleStream), errors.Is(err, ErrIncompatibleBucket), errors.Is(err, ErrInvalidConfig):
			return nil, nil, err
		}
		log.Warn("provisioning the stream and bucket: retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("provision stream and bucket: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}
