package subscriber_test

import (
	"context"
	"flag"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/internal/seed"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/subscriber"
)

var (
	catchUpFigures  = flag.Bool("catchup", false, "run TestCatchUpFigures: a backup joining a stream of -catchup.sessions sessions")
	catchUpSessions = flag.Int("catchup.sessions", 100_000, "sessions in the stream for TestCatchUpFigures and BenchmarkCatchUp")
	catchUpSkip     = flag.Bool("catchup.skip", false, "TestCatchUpFigures and BenchmarkCatchUp: pull with a small byte budget, so that the server skips much of the first pass and the catch-up reads what it was not given from the stream leader (as under load)")
)

// Goals for a backup joining a stream of 100,000 sessions.
const (
	catchUpGoal      = 2 * time.Second
	heapGoalRatio    = 1.3 // heap per session, as a multiple of the payload...
	heapGoalPlusByte = 200 // ...plus this
)

// TestCatchUpFigures measures a new backup joining a full stream: the time
// from Start until it has caught up, and the heap it holds per session.
//
//	go test ./subscriber -run CatchUpFigures -catchup -v
//	go test ./subscriber -run CatchUpFigures -catchup -catchup.sessions=10000 -v
func TestCatchUpFigures(t *testing.T) {
	if !*catchUpFigures {
		t.Skip("run with -catchup")
	}
	f := newCatchUpFixture(t, *catchUpSessions)
	fig := f.measure(t)
	t.Logf("%d sessions, %.0f payload bytes each: caught up in %s (%.0f sessions/s)",
		f.n, fig.payload, fig.took.Round(time.Millisecond), float64(f.n)/fig.took.Seconds())
	t.Logf("heap held per session %.0f bytes = payload + %.0f bytes (%.3fx payload); goal < %.0f (%.1fx + %d)",
		fig.heap, fig.heap-fig.payload, fig.heap/fig.payload, heapGoalRatio*fig.payload+heapGoalPlusByte, heapGoalRatio, heapGoalPlusByte)
	t.Logf("heap growth from Start to caught up, server caches included: %.0f bytes a session", fig.growth)
	if fig.took > catchUpGoal {
		t.Logf("catch-up took longer than the %s goal", catchUpGoal)
	}
	if fig.heap > heapGoalRatio*fig.payload+heapGoalPlusByte {
		t.Logf("heap per session above the goal")
	}
}

// BenchmarkCatchUp is the same measurement as a benchmark, one catch-up per
// iteration on a stream published once:
//
//	go test ./subscriber -run '^$' -bench CatchUp -benchtime 3x -catchup.sessions=100000
func BenchmarkCatchUp(b *testing.B) {
	f := newCatchUpFixture(b, *catchUpSessions)
	var took time.Duration
	var fig figures
	for b.Loop() {
		fig = f.measure(b)
		took += fig.took
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "s/catchup")
	b.ReportMetric(fig.payload, "payload-B/session")
	b.ReportMetric(fig.heap, "heap-B/session")
	b.ReportMetric(fig.heap-fig.payload, "overhead-B/session")
	b.ReportMetric(0, "ns/op")
}

type catchUpFixture struct {
	n      int
	js     jetstream.JetStream
	stream jetstream.Stream
}

// newCatchUpFixture publishes n sessions of about 4 KiB to a new server,
// once: async publishes, fsync in the background.
func newCatchUpFixture(tb testing.TB, n int) *catchUpFixture {
	tb.Helper()
	srv := brokertest.Start(tb, brokertest.WithSyncInterval(2*time.Second))
	nc := srv.Connect(tb)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(seed.MaxPending))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(tb)})
	if err != nil {
		tb.Fatal(err)
	}

	// A quote with a dozen drivers is about 4 KiB; vary it a little.
	eng := modeltest.Engine()
	var templates []*model.Session
	for _, stop := range []string{"payment/method", "confirm", ""} {
		run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(0), 12, stop)
		if err != nil {
			tb.Fatal(err)
		}
		templates = append(templates, run.Session())
	}
	var subj broker.Subjects
	start := time.Now()
	published, err := seed.Sessions(ctx, js, subj, templates, n, func(i int) model.SessionID { return modeltest.SessionID(i + 1) }, nil)
	if err != nil {
		tb.Fatal(err)
	}
	bytes := int(published)
	tb.Logf("published %d sessions (%d MiB, %d bytes each on average) in %s",
		n, bytes>>20, bytes/max(n, 1), time.Since(start).Round(time.Millisecond))
	return &catchUpFixture{n: n, js: js, stream: stream}
}

type figures struct {
	took    time.Duration
	payload float64 // payload bytes per session
	heap    float64 // heap the subscriber holds per session
	growth  float64 // heap growth per session from Start to caught up, server included
}

// measure starts a subscriber, times its catch-up, and measures the heap
// it holds as the difference between the heap with it and without it
// right after: the embedded server in the same process caches the blocks
// it read (for ten seconds), which the heap before Start does not include.
func (f *catchUpFixture) measure(tb testing.TB) figures {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before := heapAlloc()

	start := time.Now()
	cfg := subscriber.Config{Logger: brokertest.Logger(tb)}
	if *catchUpSkip {
		cfg = subscriber.WithPullMaxBytes(cfg, 8<<10)
	}
	sub := subscriber.New(f.js, f.stream, cfg)
	if err := sub.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := sub.WaitCaughtUp(ctx); err != nil {
		tb.Fatal(err)
	}
	took := time.Since(start)
	if sub.Len() != f.n {
		tb.Fatalf("caught up holding %d sessions, want %d", sub.Len(), f.n)
	}
	if err := sub.Close(ctx); err != nil {
		tb.Fatal(err)
	}
	held := sub.HeldBytes()
	with := heapAlloc()
	runtime.KeepAlive(sub)
	sub = nil
	without := heapAlloc()

	n := float64(f.n)
	return figures{
		took:    took,
		payload: float64(held) / n,
		heap:    float64(with-without) / n,
		growth:  float64(with-before) / n,
	}
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
