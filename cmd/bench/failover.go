package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"understudy/bench/shopper"
)

// injury is one way of making the primary fail.
type injury struct {
	id, title string
}

var injuries = []injury{
	{"kill", "kill -9"},
	{"stop", "SIGSTOP past the lease"},
}

// heldResult is what the failover phase measured at one session count:
// per injury kind, per injury, the failover time of each session.
type heldResult struct {
	held    int
	payload float64 // average snapshot bytes
	times   map[string][][]time.Duration
	errors  []string // seen by the clients
}

// failover measures failover times under load, for each session count
// held.
func (b *bench) failover(ctx context.Context) error {
	var results []*heldResult
	for _, n := range b.cfg.held {
		res, err := b.failoverAt(ctx, n)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	b.failoverRows(results)
	return nil
}

func (b *bench) failoverAt(ctx context.Context, n int) (*heldResult, error) {
	h := group3(float64(n), 0)
	// Finished sessions of the load end soon, so the sessions held stay
	// close to n.
	spec := stackSpec{id: "failover-" + strconv.Itoa(n), title: "failover", kind: understudyStack, dur: b.durabilities()[0],
		nodeArgs: []string{"-finished-linger", "2s"}, logInfo: true}
	res := &heldResult{held: n, times: map[string][][]time.Duration{}}
	// The stream is seeded before the stack starts, by a server on the
	// store the gateway then opens: as if node-a, the first primary
	// (epoch 1), had served n sessions.
	b.progress("failover, %s sessions: seeding the stream", h)
	templates, err := demoTemplates(ctx, 7, "node-a", 1)
	if err != nil {
		return nil, err
	}
	emb, avg, err := b.seededServer(ctx, filepath.Join(b.dir, spec.id, "nats"), templates, n)
	if err != nil {
		return nil, err
	}
	res.payload = avg
	if err := emb.Close(ctx); err != nil {
		return nil, err
	}
	b.progress("failover, %s sessions: starting a gateway, a primary and a backup", h)
	st, err := b.startStack(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer st.close()
	for _, node := range st.nodes {
		if _, err := st.waitNode(ctx, node, 5*time.Minute, func(ns nodeStatus) bool { return ns.Held >= n && ns.Ready }); err != nil {
			return nil, err
		}
	}
	if err := b.injure(ctx, st, res); err != nil {
		return nil, err
	}
	return res, nil
}

// loadClient is one session under load during the injuries.
type loadClient struct {
	mu      sync.Mutex
	answers []shopper.Answer
	errs    []string
}

func (c *loadClient) since(t0 time.Time, not string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.answers {
		if a.End.After(t0) && a.Node != not && a.Node != "" {
			return a.End, true
		}
	}
	return time.Time{}, false
}

func (c *loadClient) trim() {
	c.mu.Lock()
	if n := len(c.answers); n > 64 {
		c.answers = append(c.answers[:0], c.answers[n-64:]...)
	}
	c.mu.Unlock()
}

// injure injures the primary again and again under load, kill -9 then
// SIGSTOP, and records for each session how long after the injury its
// next answer came, from the new primary.
func (b *bench) injure(ctx context.Context, st *stack, res *heldResult) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := shopper.Transport(b.cfg.failoverClients + 4)
	defer tr.CloseIdleConnections()
	clients := make([]*loadClient, b.cfg.failoverClients)
	var wg sync.WaitGroup
	for i := range clients {
		c := &loadClient{}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.drive(lctx, st.url, tr, c)
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	for _, inj := range injuries {
		for k := range b.cfg.injuries {
			primary, backup, err := b.settle(ctx, st)
			if err != nil {
				return err
			}
			for _, c := range clients {
				c.trim()
			}
			if err := sleepCtx(ctx, 300*time.Millisecond); err != nil { // load on the primary first
				return err
			}
			p := st.local.Nodes[primary]
			t0 := time.Now()
			if inj.id == "kill" {
				p.Kill()
			} else {
				p.Pause()
			}
			times, err := waitAnswers(ctx, clients, t0, primary, 30*time.Second)
			if err != nil {
				return err
			}
			res.times[inj.id] = append(res.times[inj.id], times)
			b.progress("failover, %s sessions, %s %d/%d: %s → %s, slowest session %s", group3(float64(res.held), 0), inj.title, k+1, b.cfg.injuries,
				primary, backup, format(millis(slowest(times)), unitMillis))
			if err := b.recover(ctx, st, primary, inj.id == "kill"); err != nil {
				return err
			}
		}
	}
	var errs []string
	for _, c := range clients {
		c.mu.Lock()
		errs = append(errs, c.errs...)
		c.mu.Unlock()
	}
	if len(errs) > 0 {
		b.progress("failover, %s sessions: %d errors seen by clients, first: %s", group3(float64(res.held), 0), len(errs), errs[0])
	}
	res.errors = errs
	return nil
}

// drive walks sessions one after another, one request at a time with no
// think time, until ctx ends.
func (b *bench) drive(ctx context.Context, url string, tr http.RoundTripper, c *loadClient) {
	var s *shopper.Shopper
	for ctx.Err() == nil {
		if s == nil || s.Finished() {
			s = shopper.New(int(customers.Add(1)), url, tr)
			if err := s.Start(ctx); err != nil {
				if ctx.Err() == nil {
					c.mu.Lock()
					c.errs = append(c.errs, err.Error())
					c.mu.Unlock()
					s = nil
					sleepCtx(ctx, 10*time.Millisecond)
				}
				continue
			}
		}
		a, err := s.Step(ctx)
		c.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				c.errs = append(c.errs, err.Error())
				s = nil
			}
		} else {
			c.answers = append(c.answers, a)
		}
		c.mu.Unlock()
	}
}

// waitAnswers waits until every client has an answer that ended after t0
// from a node other than injured, and returns each client's time from t0
// to it. A client without one after timeout counts as timeout.
func waitAnswers(ctx context.Context, clients []*loadClient, t0 time.Time, injured string, timeout time.Duration) ([]time.Duration, error) {
	times := make([]time.Duration, len(clients))
	left := len(clients)
	for left > 0 {
		for i, c := range clients {
			if times[i] != 0 {
				continue
			}
			if at, ok := c.since(t0, injured); ok {
				times[i] = at.Sub(t0)
				left--
			}
		}
		if left == 0 {
			break
		}
		if time.Since(t0) > timeout {
			for i := range times {
				if times[i] == 0 {
					times[i] = timeout
				}
			}
			break
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return nil, err
		}
	}
	return times, nil
}

// settle waits until one node serves as the primary and the other has
// caught up as a backup, so that each injury starts from a group at rest,
// and returns which is which (a failover the benchmark did not cause may
// have changed them). It does not wait for the primary to finish adopting
// the sessions it took over at its promotion: that work dies with it when
// it is injured, and every failover starts it again on the new primary,
// so it is part of what each failover is measured with.
func (b *bench) settle(ctx context.Context, st *stack) (primary, backup string, err error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		gs, gerr := st.group()
		if gerr == nil && len(st.nodes) == 2 && (gs.Owner == st.nodes[0] || gs.Owner == st.nodes[1]) {
			primary, backup = st.nodes[0], st.nodes[1]
			if gs.Owner == backup {
				primary, backup = backup, primary
			}
			p, perr := st.node(primary)
			q, qerr := st.node(backup)
			if perr == nil && qerr == nil && p.Ready && p.Role == "primary" && q.Ready && q.Role == "backup" {
				return primary, backup, nil
			}
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("failover stack %s: no primary and caught-up backup after 5 minutes", st.id)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return "", "", err
		}
	}
}

// recover brings the injured node back as a backup: a killed node is
// started again; a paused one is resumed, and once it has seen that it
// lost the group it serves as a backup (it is restarted if it does not).
func (b *bench) recover(ctx context.Context, st *stack, node string, killed bool) error {
	if killed {
		_, err := st.local.StartNode(ctx, node, "backup")
		return err
	}
	p := st.local.Nodes[node]
	p.Resume()
	_, err := st.waitNode(ctx, node, 30*time.Second, func(ns nodeStatus) bool { return ns.Role == "backup" && ns.Ready })
	if err == nil {
		return nil
	}
	b.progress("  %s did not come back as a backup (%v): restarting it", node, err)
	p.Stop(15 * time.Second)
	_, err = st.local.StartNode(ctx, node, "backup")
	return err
}

func slowest(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// batches splits the injuries into at most runs consecutive batches and
// returns each batch's sessions' times.
func batches(perInjury [][]time.Duration, runs int) [][]time.Duration {
	n := len(perInjury)
	k := min(runs, n)
	out := make([][]time.Duration, k)
	for j := range k {
		for i := j * n / k; i < (j+1)*n/k; i++ {
			out[j] = append(out[j], perInjury[i]...)
		}
	}
	return out
}

func pooled(perInjury [][]time.Duration) []time.Duration {
	var all []time.Duration
	for _, t := range perInjury {
		all = append(all, t...)
	}
	return all
}

// failoverRows adds the failover section.
func (b *bench) failoverRows(results []*heldResult) {
	sec := b.rep.section("failover", "4. Failover time")
	sec.Note = fmt.Sprintf("A gateway, a primary and a backup; the stream seeded with the sessions held (demo sessions at the card page, published as the primary would); %d sessions under load, each one request at a time with no think time. "+
		"For each injury of the primary, each session's failover time is from the injury to the end of its first successful answer from the new primary. "+
		"Injured nodes come back as backups (a killed node is restarted; a paused one is resumed after the failover, finds it lost its lease and carries on as a backup), and each injury starts once the backup has caught up (the new primary may still be adopting the sessions it took over, as after any failover). "+
		"The %d injuries of each kind are split into %d consecutive batches (the runs); *all* is over every session of every injury. Lease %s.",
		b.cfg.failoverClients, b.cfg.injuries, min(b.cfg.runs, b.cfg.injuries), b.cfg.lease)
	for _, inj := range injuries {
		for _, res := range results {
			per := res.times[inj.id]
			bs := batches(per, b.cfg.runs)
			all := pooled(per)
			base := fmt.Sprintf("%s.%d", inj.id, res.held)
			name := fmt.Sprintf("%s, %s sessions held", inj.title, group3(float64(res.held), 0))
			for _, p := range []struct {
				id  string
				pct float64
			}{{"p50", 50}, {"p99", 99}, {"max", 100}} {
				vals := make([]float64, len(bs))
				for j, bt := range bs {
					vals[j] = millis(percentile(bt, p.pct))
				}
				row := sec.add(base+"."+p.id, name+", "+p.id, unitMillis, vals)
				if len(all) > 0 {
					row.Pooled = millis(percentile(all, p.pct))
					row.PooledN = len(all)
				}
			}
		}
	}
	if len(results) >= 2 {
		small, large := results[0], results[len(results)-1]
		for _, inj := range injuries {
			for _, p := range []struct {
				id  string
				pct float64
			}{{"p50", 50}, {"p99", 99}} {
				bl, bs := batches(large.times[inj.id], b.cfg.runs), batches(small.times[inj.id], b.cfg.runs)
				var lv, sv []float64
				for j := range min(len(bl), len(bs)) {
					lv = append(lv, millis(percentile(bl[j], p.pct)))
					sv = append(sv, millis(percentile(bs[j], p.pct)))
				}
				id := fmt.Sprintf("%s.%d_over_%d.%s", inj.id, large.held, small.held, p.id)
				name := fmt.Sprintf("%s: %s ÷ %s sessions held, %s", inj.title, group3(float64(large.held), 0), group3(float64(small.held), 0), p.id)
				row := sec.add(id, name, unitRatio, ratios(lv, sv))
				la, sa := pooled(large.times[inj.id]), pooled(small.times[inj.id])
				if len(la) > 0 && len(sa) > 0 {
					row.Pooled = millis(percentile(la, p.pct)) / millis(percentile(sa, p.pct))
					row.PooledN = len(la) + len(sa)
				}
			}
		}
	}
	for _, res := range results {
		row := sec.add(fmt.Sprintf("errors.%d", res.held), fmt.Sprintf("errors seen by clients, %s sessions held, all injuries", group3(float64(res.held), 0)), unitCount, []float64{float64(len(res.errors))})
		row.Note = "a count, not a run"
		if len(res.errors) > 0 {
			row.Note += "; first: " + res.errors[0]
		}
	}
}
