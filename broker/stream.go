package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStream returns the session stream, creating it if it does not
// exist. It is idempotent and safe to call from every process at startup.
//
// An existing stream is never updated. If it differs from cfg in a setting
// that changes what is stored or whether a write is acknowledged, the
// error wraps ErrIncompatibleStream and names every such setting with both
// values, e.g. "stream UNDERSTUDY_SESSIONS: storage is Memory, want File";
// an operator resolves it. Incompatible settings: subjects, storage,
// replicas, retention, discard policy, per-subject history, stream-wide
// message and byte limits, max message size, no-ack, sealed, deny
// delete/purge, direct get, mirror, sources, subject transform, message
// counters, persist mode. Tolerated (logged at warn): description, max
// age, duplicate window, compression, max consumers, rollup, message TTL,
// republish, placement, metadata and the rest.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	want := cfg.JetStream()

	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err == nil {
			cfg.Logger.Info("stream created", "stream", want.Name, "replicas", want.Replicas, "history", want.MaxMsgsPerSubject)
			return s, nil
		}
		// Another process created it meanwhile, with settings of its own
		// (the server answers identical creates with success): compare.
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, want.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", want.Name, err)
	}
	if err := checkStream(cfg.Logger, "stream "+want.Name, ErrIncompatibleStream, s.CachedInfo().Config, want, streamIncompatible, streamTolerated); err != nil {
		return nil, err
	}
	return s, nil
}

// A setting compared between a stream's stored configuration and the
// wanted one.
type setting struct {
	name string
	get  func(jetstream.StreamConfig) any
}

// streamIncompatible lists the settings whose difference EnsureStream
// refuses.
var streamIncompatible = []setting{
	{"subjects", func(c jetstream.StreamConfig) any { return sortedSubjects(c.Subjects) }},
	{"storage", func(c jetstream.StreamConfig) any { return c.Storage }},
	{"replicas", func(c jetstream.StreamConfig) any { return max(c.Replicas, 1) }},
	{"retention", func(c jetstream.StreamConfig) any { return c.Retention }},
	{"discard", func(c jetstream.StreamConfig) any { return c.Discard }},
	{"discard new per subject", func(c jetstream.StreamConfig) any { return c.DiscardNewPerSubject }},
	{"history (max msgs per subject)", func(c jetstream.StreamConfig) any { return c.MaxMsgsPerSubject }},
	{"max msgs", func(c jetstream.StreamConfig) any { return c.MaxMsgs }},
	{"max bytes", func(c jetstream.StreamConfig) any { return c.MaxBytes }},
	{"max msg size", func(c jetstream.StreamConfig) any { return c.MaxMsgSize }},
	{"no ack", func(c jetstream.StreamConfig) any { return c.NoAck }},
	{"sealed", func(c jetstream.StreamConfig) any { return c.Sealed }},
	{"deny delete", func(c jetstream.StreamConfig) any { return c.DenyDelete }},
	{"deny purge", func(c jetstream.StreamConfig) any { return c.DenyPurge }},
	{"allow direct", func(c jetstream.StreamConfig) any { return c.AllowDirect }},
	{"mirror direct", func(c jetstream.StreamConfig) any { return c.MirrorDirect }},
	{"mirror", func(c jetstream.StreamConfig) any { return c.Mirror != nil }},
	{"sources", func(c jetstream.StreamConfig) any { return len(c.Sources) }},
	{"subject transform", func(c jetstream.StreamConfig) any { return c.SubjectTransform != nil }},
	{"message counters", func(c jetstream.StreamConfig) any { return c.AllowMsgCounter }},
	{"persist mode", func(c jetstream.StreamConfig) any { return c.PersistMode }},
}

// streamTolerated lists the settings whose difference is only logged.
var streamTolerated = []setting{
	{"max age", func(c jetstream.StreamConfig) any { return c.MaxAge }},
	{"duplicates", func(c jetstream.StreamConfig) any { return c.Duplicates }},
	{"compression", func(c jetstream.StreamConfig) any { return c.Compression }},
	{"allow rollup", func(c jetstream.StreamConfig) any { return c.AllowRollup }},
	{"max consumers", func(c jetstream.StreamConfig) any { return c.MaxConsumers }},
	{"republish", func(c jetstream.StreamConfig) any { return c.RePublish != nil }},
}

func sortedSubjects(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, ",")
}

// checkStream compares have with want: a difference in an incompatible
// setting is an error wrapping sentinel, one in a tolerated setting a
// warning.
func checkStream(log *slog.Logger, what string, sentinel error, have, want jetstream.StreamConfig, incompatible, tolerated []setting) error {
	var bad []string
	for _, s := range incompatible {
		if h, w := s.get(have), s.get(want); !reflect.DeepEqual(h, w) {
			bad = append(bad, fmt.Sprintf("%s is %v, want %v", s.name, h, w))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %w: %s", what, sentinel, strings.Join(bad, "; "))
	}
	for _, s := range tolerated {
		if h, w := s.get(have), s.get(want); !reflect.DeepEqual(h, w) {
			log.Warn("existing stream differs, kept as is", "what", what, "setting", s.name, "have", h, "want", w)
		}
	}
	return nil
}
