package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/internal/deploy"
	"understudy/model"
	"understudy/subscriber"
)

// catchUpResult is what the catch-up phase measured at one session
// count, per run.
type catchUpResult struct {
	held                                          int
	payload                                       float64
	subTook, subHeap, procTook, procRSS, procHeld []float64
}

// catchup measures a new backup joining a stream of each session count:
// -runs times the subscriber in this process (time until caught up, heap
// held per session, as subscriber's own catch-up figures measure it), and
// -runs times a real backup process (from exec until it reports ready, and
// its resident memory then). The stream is the one subscriber's figures
// use: modeltest quotes of about 4 KiB, on a server in this process.
func (b *bench) catchup(ctx context.Context) error {
	bins, _, err := b.binaries(ctx)
	if err != nil {
		return err
	}
	templates, err := catchUpTemplates(ctx)
	if err != nil {
		return err
	}
	var results []*catchUpResult
	for _, n := range b.cfg.held {
		b.progress("catch-up, %s sessions: seeding a stream", group3(float64(n), 0))
		res, err := b.catchUpAt(ctx, bins.Backup, templates, n)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	b.catchUpRows(results)
	return nil
}

func (b *bench) catchUpAt(ctx context.Context, backupBin string, templates []*model.Session, n int) (*catchUpResult, error) {
	dir := filepath.Join(b.dir, "catchup-"+strconv.Itoa(n))
	emb, avg, err := b.seededServer(ctx, filepath.Join(dir, "nats"), templates, n)
	if err != nil {
		return nil, err
	}
	defer emb.Close(context.Background())
	res := &catchUpResult{held: n, payload: avg}
	nc, err := broker.Connect(ctx, broker.Config{URL: emb.ClientURL(), Name: "bench-catchup", Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: quiet})
	if err != nil {
		return nil, err
	}
	h := group3(float64(n), 0)
	for r := range b.cfg.runs {
		took, perSession, held, err := measureSubscriber(ctx, js, stream)
		if err != nil {
			return nil, err
		}
		if held != n {
			return nil, fmt.Errorf("catch-up: the subscriber holds %d sessions, want %d", held, n)
		}
		res.subTook = append(res.subTook, took.Seconds())
		res.subHeap = append(res.subHeap, perSession)
		b.progress("catch-up, %s sessions, run %d/%d: subscriber in process caught up in %s, %s held per session",
			h, r+1, b.cfg.runs, took.Round(time.Millisecond), format(perSession, unitBytes))
	}
	for r := range b.cfg.runs {
		took, rss, held, err := b.backupProcess(ctx, backupBin, dir, emb.ClientURL(), fmt.Sprintf("join-%d", r+1))
		if err != nil {
			return nil, err
		}
		res.procTook = append(res.procTook, took.Seconds())
		res.procRSS = append(res.procRSS, float64(rss))
		res.procHeld = append(res.procHeld, float64(held))
		b.progress("catch-up, %s sessions, run %d/%d: backup process ready in %s holding %s, RSS %s", h, r+1, b.cfg.runs,
			took.Round(time.Millisecond), group3(float64(held), 0), format(float64(rss)/(1<<20), unitMiB))
	}
	return res, nil
}

// backupProcess starts cmd/backup against the stream at url and returns
// how long it took from exec until it reported ready (caught up), its
// resident memory then, and how many sessions it held.
func (b *bench) backupProcess(ctx context.Context, bin, dir, url, name string) (time.Duration, int64, int, error) {
	port, err := deploy.FreePort()
	if err != nil {
		return 0, 0, 0, err
	}
	args := []string{"-node", name, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-nats", url,
		"-db", filepath.Join(dir, "entities.db"), "-log-level", "warn"}
	t0 := time.Now()
	p, err := deploy.Start(name, bin, args, filepath.Join(dir, name+".log"))
	if err != nil {
		return 0, 0, 0, err
	}
	defer p.Stop(15 * time.Second)
	statusURL := fmt.Sprintf("http://127.0.0.1:%d/understudy/status", port)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var ns nodeStatus
		if resp, err := statusClient.Get(statusURL); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&ns)
			resp.Body.Close()
			if err == nil && ns.Ready {
				took := time.Since(t0)
				rss, err := rssBytes(p.PID())
				return took, rss, ns.Held, err
			}
		}
		if exited, err := p.Exited(); exited {
			return 0, 0, 0, fmt.Errorf("%s exited while catching up (see %s): %v", name, p.Log, err)
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("%s not ready after 5 minutes (see %s)", name, p.Log)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return 0, 0, 0, err
		}
	}
}

// measureSubscriber starts a subscriber on the stream, times its
// catch-up, and measures the heap it holds per session as the heap with
// it less the heap without it right after (the subscriber package's own
// method).
func measureSubscriber(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream) (time.Duration, float64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	heapAlloc() // settle what came before
	start := time.Now()
	sub := subscriber.New(js, stream, subscriber.Config{Logger: quiet})
	if err := sub.Start(ctx); err != nil {
		return 0, 0, 0, err
	}
	if err := sub.WaitCaughtUp(ctx); err != nil {
		return 0, 0, 0, err
	}
	took := time.Since(start)
	if err := sub.Close(ctx); err != nil {
		return 0, 0, 0, err
	}
	n := sub.Len()
	with := heapAlloc()
	runtime.KeepAlive(sub)
	sub = nil
	without := heapAlloc()
	return took, float64(with-without) / float64(max(n, 1)), n, nil
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// catchUpRows adds the catch-up section.
func (b *bench) catchUpRows(results []*catchUpResult) {
	sec := b.rep.section("catchup", "5. Backup catch-up and memory")
	sec.Note = "A new backup joining a stream of the sessions held: subscriber's own catch-up stream (modeltest quotes with 12 drivers stopped at three places, about 4 KiB; payload = the average snapshot), on an embedded NATS server in this process. " +
		"*Subscriber*: package subscriber's consumer in this process, from Start until caught up; memory = the Go heap it holds per session after a GC (the heap with it less the heap without it), as `go test ./subscriber -run CatchUpFigures -catchup` measures it. " +
		"*Backup process*: cmd/backup started by the benchmark, from exec until /understudy/status reports it ready (caught up; polled every 5 ms); memory = its resident set (VmRSS) then, garbage not yet collected included."
	for _, res := range results {
		h := group3(float64(res.held), 0)
		base := fmt.Sprintf("%d", res.held)
		sec.add(base+".payload", h+" sessions: snapshot size (payload)", unitBytes, []float64{res.payload}).Note = "average, one figure"
		sec.add(base+".subscriber.took", h+" sessions: subscriber catch-up", unitSecs, res.subTook)
		sec.add(base+".subscriber.heap", h+" sessions: subscriber heap per session", unitBytes, res.subHeap)
		over := make([]float64, len(res.subHeap))
		rel := make([]float64, len(res.subHeap))
		for i, v := range res.subHeap {
			over[i] = v - res.payload
			rel[i] = v / res.payload
		}
		sec.add(base+".subscriber.overhead", h+" sessions: subscriber heap per session beyond the snapshot", unitBytes, over)
		sec.add(base+".subscriber.ratio", h+" sessions: subscriber heap per session ÷ snapshot", unitRatio, rel)
		sec.add(base+".process.took", h+" sessions: backup process, exec to ready", unitSecs, res.procTook)
		sec.add(base+".process.rss", h+" sessions: backup process RSS when ready", unitMiB, scale(res.procRSS, 1.0/(1<<20)))
		per := make([]float64, len(res.procRSS))
		for i, v := range res.procRSS {
			per[i] = v / max(res.procHeld[i], 1)
		}
		sec.add(base+".process.rss_per_session", h+" sessions: backup process RSS per session held", unitBytes, per)
	}
	if len(results) >= 2 {
		small, large := results[0], results[len(results)-1]
		var growth, beyond []float64
		for i := range min(len(small.procRSS), len(large.procRSS)) {
			dn := large.procHeld[i] - small.procHeld[i]
			if dn > 0 {
				g := (large.procRSS[i] - small.procRSS[i]) / dn
				growth = append(growth, g)
				beyond = append(beyond, g-large.payload)
			}
		}
		span := fmt.Sprintf("%s → %s sessions", group3(float64(small.held), 0), group3(float64(large.held), 0))
		sec.add(fmt.Sprintf("process.rss_growth.%d_%d", small.held, large.held),
			"backup process: RSS growth per session, "+span, unitBytes, growth)
		sec.add(fmt.Sprintf("process.rss_growth_beyond_snapshot.%d_%d", small.held, large.held),
			"backup process: RSS growth per session beyond the snapshot, "+span, unitBytes, beyond)
	}
}
