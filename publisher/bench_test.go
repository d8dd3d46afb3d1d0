package publisher_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
// pre-encoded snapshot bytes (raw: the floor), the same bytes with what
// understudy asks of the server added step by step (+expect: the expected
// last subject sequence, the price of fencing; +headers: every header a
// snapshot carries; +msgid: a Nats-Msg-Id as earlier versions sent, which
// makes the server keep a duplicate window), a session publish through
// the publisher (understudy: encoding, headers, expected sequence) and the
// same with the payload sealed (understudy-sealed: AES-256-GCM), on the
// embedded server's default: fsync on every write.
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
	// The raw variants publish sessions[0]'s bytes on subjects of their
	// own, new for each call (-count runs them again), each keeping its
	// subjects' last sequences.
	for v, variant := range []string{"raw+expect", "raw+expect+headers", "raw+expect+headers+msgid"} {
		b.Run(variant, func(b *testing.B) {
			call := rawCalls.Add(1)
			last := make([]uint64, len(subjects))
			own := make([]string, len(subjects))
			for i := range own {
				own[i] = fmt.Sprintf("%s.%d", subjects[i], call)
			}
			m := snapshot.Meta{Session: sessions[0].ID, Epoch: 1, Seq: 1, Node: "n1", Format: cbor.FormatVersion}
			i := 0
			for b.Loop() {
				k := i % len(own)
				msg := &nats.Msg{Subject: own[k], Data: data, Header: nats.Header{}}
				if v >= 1 {
					m.Prev = last[k]
					msg.Header = m.Header(data)
				}
				if v >= 2 {
					msg.Header.Set(nats.MsgIdHdr, snapshot.MsgID(m.Session, m.Epoch, uint64(i), false, data))
				}
				msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[k], 10))
				ack, err := e.js.PublishMsg(ctx, msg)
				if err != nil {
					b.Fatal(err)
				}
				last[k] = ack.Sequence
				i++
			}
		})
	}
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

// rawCalls numbers the calls of the raw variants, for their subjects.
var rawCalls atomic.Int64

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

// BenchmarkPurge measures Purge of an ended session's history (eleven
// messages, spread over the stream among the messages of `between` other
// sessions, as under load) beside a publish in the same run: what a
// primary can purge a second bounds the rate at which sessions may end
// under a retention.
func BenchmarkPurge(b *testing.B) {
	for _, fsync := range []string{"always", "periodic"} {
		b.Run(fsync, func(b *testing.B) {
			var opts []brokertest.Option
			if fsync == "periodic" {
				opts = append(opts, brokertest.WithSyncInterval(100*time.Millisecond))
			}
			e := setup(b, opts...)
			data := make([]byte, 4096)
			pub := func(subject string) uint64 {
				ack, err := e.js.Publish(ctx, subject, data)
				if err != nil {
					b.Fatal(err)
				}
				return ack.Sequence
			}
			p := e.publisher(b, "n1", nil)
			subject := func(i int) string {
				s, _ := broker.Subjects{}.SessionSubject(string(modeltest.SessionID(i)))
				return s
			}
			others := 0
			b.Run("publish", func(b *testing.B) {
				for b.Loop() {
					pub(subject(1_000_000 + others))
					others++
				}
			})
			for _, between := range []int{1, 100} {
				b.Run(fmt.Sprintf("purge/between=%d", between), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						id := modeltest.SessionID(100_000*between + i)
						var top uint64
						for range 11 {
							top = pub(subject(100_000*between + i))
							for range between {
								pub(subject(1_000_000 + others%5000))
								others++
							}
						}
						b.StartTimer()
						if err := p.Purge(ctx, id, top); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
