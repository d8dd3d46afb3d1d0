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
	var (
		stream jetstream.Stream
		kv     jetstream.KeyValue
	)
	err := Retry(ctx, log, "provisioning the stream and bucket", func(err error) bool {
		return errors.Is(err, ErrIncompatibleStream) || errors.Is(err, ErrIncompatibleBucket) || errors.Is(err, ErrInvalidConfig)
	}, func() error {
		var err error
		if stream, err = EnsureStream(ctx, js, sc); err != nil {
			return err
		}
		kv, err = EnsureBucket(ctx, js, bc)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return stream, kv, nil
}

// Retry calls fn until it succeeds, fails with an error permanent says
// is for good (nil: none is), or ctx ends, waiting 100 ms after the first
// failure, doubling up to 5 s, and logging each failure as what. It
// returns fn's last error, or ctx's with fn's last error in its text.
func Retry(ctx context.Context, log *slog.Logger, what string, permanent func(error) bool, fn func() error) error {
	if log == nil {
		log = slog.Default()
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := fn()
		if err == nil || permanent != nil && permanent(err) {
			return err
		}
		log.Warn(what+": retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}
