package publisher_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/publisher"
	"understudy/snapshot"
)

// benchSessions returns n realistic sessions (about 4 KiB encoded: a quote
// with 12 drivers waiting three applications deep).
func benchSessions(b *testing.B, n int) []*model.Session {
	run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(1), 12, "payment/card/details")
	if err != nil {
		b.Fatal(err)
	}
	out := make([]*model.Session, n)
	for i := range out {
		s := run.Restamp("n1", 1).Session()
		s.ID = modeltest.SessionID(1000 + i)
		out[i] = s
	}
	return out
}

// BenchmarkPublish compares, in one run, a plain JetStream sync publish of
// pre-encoded snapshot bytes (raw: the floor) with a session publish through
// the publisher (understudy: encoding, Nats-Msg-Id hash, headers, expected
// sequence) and the same with the payload sealed (understudy-sealed:
// AES-256-GCM), on the embedded server's default: fsync on every write.
func BenchmarkPublish(b *testing.B) { benchPublish(b) }

// BenchmarkPublishPeriodicFsync is the same with the server fsyncing in the
// background every 100 ms, where encoding is a larger share.
func BenchmarkPublishPeriodicFsync(b *testing.B) {
	benchPublish(b, brokertest.WithSyncInterval(100*time.Millisecond))
}

func benchPublish(b *testing.B, opts ...brokertest.Option) {
	e := setup(b, opts...)
	sessions := benchSessions(b, 64)
	data, err := cbor.Marshal(sessions[0])
	if err != nil {
		b.Fatal(err)
	}
	subjects := make([]string, len(sessions))
	for i, s := range sessions {
		subjects[i], _ = broker.Subjects{}.SessionSubject(string(s.ID))
	}
	b.Run("raw", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := e.js.Publish(ctx, subjects[i%len(subjects)], data); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(len(data)), "bytes/snapshot")
	})
	keys, err := snapshot.ParseKeyring([]byte("bench " + strings.Repeat("5c", 32)))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		sealer snapshot.Sealer
	}{{"understudy", nil}, {"understudy-sealed", keys}} {
		b.Run(c.name, func(b *testing.B) {
			p := e.publisherOn(b, e.js, "n1", nil, func(cfg *publisher.Config) { cfg.Sealer = c.sealer })
			// Start where the previous run left each subject.
			for _, s := range sessions {
				st, err := e.stream.GetLastMsgForSubject(ctx, mustSubject(b, s.ID))
				if err == nil {
					p.Track(s.ID, st.Sequence)
				}
			}
			i, bytes := 0, 0
			for b.Loop() {
				s := sessions[i%len(sessions)]
				s.Seq++
				ack, err := p.Publish(ctx, s)
				if err != nil {
					b.Fatal(err)
				}
				bytes = ack.Bytes
				i++
			}
			b.ReportMetric(float64(bytes), "bytes/snapshot")
		})
	}
}

func mustSubject(b *testing.B, id model.SessionID) string {
	s, err := broker.Subjects{}.SessionSubject(string(id))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPublishAsync measures async throughput over 1,000 sessions with
// at most 256 in flight, fsync on every write and periodic.
func BenchmarkPublishAsync(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []brokertest.Option
	}{{"fsync-always", nil}, {"fsync-100ms", []brokertest.Option{brokertest.WithSyncInterval(100 * time.Millisecond)}}} {
		b.Run(c.name, func(b *testing.B) {
			e := setup(b, c.opts...)
			sessions := benchSessions(b, 1000)
			var failed atomic.Int64
			p := e.publisherOn(b, e.js, "n1", nil, func(cfg *publisher.Config) {
				cfg.MaxPending = 256
				cfg.OnAsyncError = func(error) { failed.Add(1) }
			})
			start := time.Now()
			i := 0
			for b.Loop() {
				s := *sessions[i%len(sessions)]
				s.Seq = uint64(i + 1)
				if err := p.PublishAsync(ctx, &s); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "snapshots/s")
			if failed.Load() > 0 {
				b.Fatalf("%d async publishes failed", failed.Load())
			}
		})
	}
}
