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

func TestStreamConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  broker.StreamConfig
		ok   bool
	}{
		{"zero", broker.StreamConfig{}, true},
		{"cluster", broker.StreamConfig{Replicas: 3}, true},
		{"replicas 6", broker.StreamConfig{Replicas: 6}, false},
		{"replicas -1", broker.StreamConfig{Replicas: -1}, false},
		{"history -1", broker.StreamConfig{History: -1}, false},
		{"duplicates past max age", broker.StreamConfig{Duplicates: time.Hour, MaxAge: time.Minute}, false},
		{"max msg size -1", broker.StreamConfig{MaxMsgSize: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, broker.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestEnsureStreamCreatesAndIsIdempotent(t *testing.T) {
	js := brokertest.Start(t).JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := broker.StreamConfig{Logger: brokertest.Logger(t)}

	s, err := broker.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.Name != "UNDERSTUDY_SESSIONS" || len(got.Subjects) != 1 || got.Subjects[0] != "understudy.sess.>" ||
		got.Storage != jetstream.FileStorage || got.Replicas != 1 || got.MaxMsgsPerSubject != broker.DefaultHistory ||
		got.Discard != jetstream.DiscardOld || got.MaxAge != broker.DefaultMaxAge || got.Duplicates != broker.DefaultDuplicates ||
		got.MaxMsgSize != broker.DefaultMaxMsgSize || got.AllowDirect || got.AllowRollup || got.DenyDelete || got.DenyPurge ||
		got.MaxMsgs != -1 || got.MaxBytes != -1 {
		t.Fatalf("created stream config: %+v", got)
	}

	for range 2 {
		if _, err := broker.EnsureStream(ctx, js, cfg); err != nil {
			t.Fatalf("EnsureStream on an existing stream: %v", err)
		}
	}
	// A tolerated difference (the safety-net max age) is accepted as is.
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{MaxAge: 90 * 24 * time.Hour, Compression: true, Logger: cfg.Logger}); err != nil {
		t.Fatalf("EnsureStream with another max age: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != broker.DefaultMaxAge {
		t.Fatalf("existing stream was updated: max age %s", info.Config.MaxAge)
	}
}

func TestEnsureStreamIncompatible(t *testing.T) {
	tests := []struct {
		name     string
		existing func(*jetstream.StreamConfig)
		want     broker.StreamConfig
		message  string
	}{
		{
			name:     "memory storage",
			existing: func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage },
			message:  "stream UNDERSTUDY_SESSIONS: incompatible stream: storage is Memory, want File",
		},
		{
			name:    "replicas",
			want:    broker.StreamConfig{Replicas: 3},
			message: "replicas is 1, want 3",
		},
		{
			name:     "history",
			existing: func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 4 },
			message:  "history (max msgs per subject) is 4, want 16",
		},
		{
			name:     "subjects",
			existing: func(c *jetstream.StreamConfig) { c.Subjects = []string{"understudy.sess.*"} },
			message:  "subjects is understudy.sess.*, want understudy.sess.>",
		},
		{
			name:     "direct get",
			existing: func(c *jetstream.StreamConfig) { c.AllowDirect = true },
			message:  "allow direct is true, want false",
		},
		{
			name: "several",
			existing: func(c *jetstream.StreamConfig) {
				c.Storage = jetstream.MemoryStorage
				c.MaxBytes = 1 << 20
				c.DenyPurge = true
			},
			message: "storage is Memory, want File; max bytes is 1048576, want -1; deny purge is true, want false",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := brokertest.Start(t).JetStream(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			existing := broker.StreamConfig{}.JetStream()
			if tt.existing != nil {
				tt.existing(&existing)
			}
			if _, err := js.CreateStream(ctx, existing); err != nil {
				t.Fatal(err)
			}
			tt.want.Logger = brokertest.Logger(t)
			_, err := broker.EnsureStream(ctx, js, tt.want)
			if !errors.Is(err, broker.ErrIncompatibleStream) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("EnsureStream = %v\nwant ErrIncompatibleStream containing %q", err, tt.message)
			}
			// Never a silent update.
			s, err := js.Stream(ctx, existing.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config; got.Storage != existing.Storage || got.MaxMsgsPerSubject != existing.MaxMsgsPerSubject {
				t.Fatalf("stream changed: %+v", got)
			}
		})
	}
}

func TestEnsureStreamPrefix(t *testing.T) {
	js := brokertest.Start(t).JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subj, err := broker.NewSubjects("acme")
	if err != nil {
		t.Fatal(err)
	}
	s, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Subjects: subj, History: 3, Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.Name != "ACME_SESSIONS" || got.Subjects[0] != "acme.sess.>" || got.MaxMsgsPerSubject != 3 {
		t.Fatalf("stream config: %+v", got)
	}
	// History is per session subject.
	for i := range 5 {
		if _, err := js.Publish(ctx, "acme.sess.a", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "acme.sess.b", []byte("b")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 {
		t.Fatalf("stream holds %d messages, want 3 for a and 1 for b", info.State.Msgs)
	}
}
