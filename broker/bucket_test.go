package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
)

func TestBucketConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg broker.BucketConfig
		ok  bool
	}{
		{broker.BucketConfig{}, true},
		{broker.BucketConfig{Replicas: 3, History: 5}, true},
		{broker.BucketConfig{Replicas: 7}, false},
		{broker.BucketConfig{History: 65}, false},
	} {
		if err := tt.cfg.Validate(); tt.ok != (err == nil) || err != nil && !errors.Is(err, broker.ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tt.cfg, err, tt.ok)
		}
	}
}

func TestEnsureBucketIdempotent(t *testing.T) {
	js := brokertest.Start(t).JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := broker.BucketConfig{Logger: brokertest.Logger(t)}

	kv, err := broker.EnsureBucket(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if kv.Bucket() != "understudy_groups" {
		t.Fatalf("bucket %q", kv.Bucket())
	}
	rev, err := kv.Create(ctx, "g1", []byte("epoch 1"))
	if err != nil {
		t.Fatal(err)
	}

	again, err := broker.EnsureBucket(ctx, js, cfg)
	if err != nil {
		t.Fatalf("EnsureBucket on an existing bucket: %v", err)
	}
	e, err := again.Get(ctx, "g1")
	if err != nil || e.Revision() != rev || string(e.Value()) != "epoch 1" {
		t.Fatalf("entry after EnsureBucket: %v, %v", e, err)
	}
	st, err := again.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 1 || st.TTL() != 0 || st.BackingStore() != "JetStream" {
		t.Fatalf("status: history %d ttl %s", st.History(), st.TTL())
	}
	s, err := js.Stream(ctx, "KV_understudy_groups")
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.Storage != jetstream.FileStorage || c.Replicas != 1 {
		t.Fatalf("backing stream: %+v", c)
	}
}

func TestEnsureBucketIncompatible(t *testing.T) {
	tests := []struct {
		name     string
		existing jetstream.KeyValueConfig
		message  string
	}{
		{"history", jetstream.KeyValueConfig{History: 5, Storage: jetstream.FileStorage}, "history is 5, want 1"},
		{"ttl", jetstream.KeyValueConfig{TTL: time.Hour, Storage: jetstream.FileStorage}, "ttl is 1h0m0s, want 0s"},
		{"memory", jetstream.KeyValueConfig{Storage: jetstream.MemoryStorage}, "storage is Memory, want File"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := brokertest.Start(t).JetStream(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tt.existing.Bucket = "understudy_groups"
			if _, err := js.CreateKeyValue(ctx, tt.existing); err != nil {
				t.Fatal(err)
			}
			_, err := broker.EnsureBucket(ctx, js, broker.BucketConfig{Logger: brokertest.Logger(t)})
			if !errors.Is(err, broker.ErrIncompatibleBucket) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("EnsureBucket = %v\nwant ErrIncompatibleBucket containing %q", err, tt.message)
			}
			if !strings.Contains(err.Error(), "bucket understudy_groups") {
				t.Errorf("error does not name the bucket: %v", err)
			}
		})
	}
}
