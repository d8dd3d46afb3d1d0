package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureBucket returns the groups bucket, creating it if it does not
// exist. It is idempotent and safe to call from every process at startup.
//
// An existing bucket is never updated. If it differs from cfg in storage,
// history, replicas or TTL (or is a mirror, sealed, or the like), the
// error wraps ErrIncompatibleBucket and names each setting with both
// values.
//
// The bucket is a nats.go key-value bucket, which allows direct get: a Get
// may be answered by a replica that lags the leader. That is safe for the
// lease because every change is a compare-and-set on the revision, which
// the leader checks; a stale read only makes such an update fail. Code
// that must see the latest entry reads it through an update, not a Get.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	want := cfg.JetStream()

	kv, err := js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want)
		if err == nil {
			cfg.Logger.Info("bucket created", "bucket", want.Bucket, "replicas", want.Replicas, "history", want.History)
			return kv, nil
		}
		// Created meanwhile by another process with other settings: compare.
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, want.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", want.Bucket, err)
	}

	// Compare the backing stream; nats.go names it KV_<bucket>.
	stream := "KV_" + want.Bucket
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: stream %s: %w", want.Bucket, stream, err)
	}
	expect := jetstream.StreamConfig{
		Subjects:          []string{"$KV." + want.Bucket + ".>"},
		Storage:           want.Storage,
		Replicas:          want.Replicas,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: int64(want.History),
		MaxAge:            want.TTL,
	}
	if err := checkStream(cfg.Logger, "bucket "+want.Bucket, ErrIncompatibleBucket, s.CachedInfo().Config, expect, bucketIncompatible, nil); err != nil {
		return nil, err
	}
	return kv, nil
}

var bucketIncompatible = []setting{
	{"subjects", func(c jetstream.StreamConfig) any { return sortedSubjects(c.Subjects) }},
	{"storage", func(c jetstream.StreamConfig) any { return c.Storage }},
	{"replicas", func(c jetstream.StreamConfig) any { return max(c.Replicas, 1) }},
	{"retention", func(c jetstream.StreamConfig) any { return c.Retention }},
	{"history", func(c jetstream.StreamConfig) any { return c.MaxMsgsPerSubject }},
	{"ttl", func(c jetstream.StreamConfig) any { return c.MaxAge }},
	{"no ack", func(c jetstream.StreamConfig) any { return c.NoAck }},
	{"sealed", func(c jetstream.StreamConfig) any { return c.Sealed }},
	{"mirror", func(c jetstream.StreamConfig) any { return c.Mirror != nil }},
	{"sources", func(c jetstream.StreamConfig) any { return len(c.Sources) }},
	{"subject transform", func(c jetstream.StreamConfig) any { return c.SubjectTransform != nil }},
	{"persist mode", func(c jetstream.StreamConfig) any { return c.PersistMode }},
}
