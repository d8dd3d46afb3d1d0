package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"understudy/bench/shopper"
)

// stackSpecs are the stacks latency and throughput compare.
func (b *bench) stackSpecs() []stackSpec {
	ds := b.durabilities()
	always, periodic := ds[0], ds[1]
	return []stackSpec{
		{id: "understudy-always", title: "understudy, fsync every write", kind: understudyStack, dur: always},
		{id: "understudy-periodic", title: "understudy, periodic fsync", kind: understudyStack, dur: periodic},
		{id: "off", title: "understudy, replication off", kind: offStack, dur: always},
		{id: "redis-always", title: "Redis baseline, appendfsync always", kind: redisStack, dur: always},
		{id: "redis-periodic", title: "Redis baseline, appendfsync everysec", kind: redisStack, dur: periodic},
	}
}

// longLeaseSpecs are the understudy stacks again with -throughput-lease,
// for throughput only.
func (b *bench) longLeaseSpecs() []stackSpec {
	if b.cfg.throughputLease <= 0 || !b.cfg.only["throughput"] {
		return nil
	}
	var out []stackSpec
	for _, spec := range b.stackSpecs() {
		if spec.kind == redisStack {
			continue
		}
		spec.id += "-lease"
		spec.title += ", lease " + b.cfg.throughputLease.String()
		spec.lease = b.cfg.throughputLease
		out = append(out, spec)
	}
	return out
}

// stacks starts every stack at once, then measures latency and
// throughput on each, run by run, in an order that rotates: every stack
// sees the same machine, and ratios are of figures of the same run.
func (b *bench) stacks(ctx context.Context) error {
	var base, all []*stack
	for i, spec := range append(b.stackSpecs(), b.longLeaseSpecs()...) {
		if spec.kind == redisStack && b.redis != "" {
			continue
		}
		b.progress("stacks: starting %s", spec.id)
		st, err := b.startStack(ctx, spec)
		if err != nil {
			return err
		}
		defer st.close()
		if i < len(b.stackSpecs()) {
			base = append(base, st)
		}
		all = append(all, st)
	}
	if b.cfg.only["latency"] {
		if err := b.latency(ctx, base); err != nil {
			return err
		}
	}
	if b.cfg.only["throughput"] {
		if err := b.throughput(ctx, all); err != nil {
			return err
		}
	}
	return nil
}

// customers numbers the benchmark's shoppers, so each is a different
// customer of demo.Answers.
var customers atomic.Int64

// latency walks one session at a time through each stack and measures
// every interaction (a POST answered by the next page).
func (b *bench) latency(ctx context.Context, stacks []*stack) error {
	sec := b.rep.section("latency", "2. Interaction latency through the whole stack")
	sec.Note = fmt.Sprintf("One browser-like client (bench/shopper: the page's JSON twin, answered with demo.Answers), one request at a time, no think time, through the gateway; "+
		"%s interactions (POSTs) per stack per run. understudy: a primary and a backup, replication sync (answer after the JetStream ack). "+
		"Redis baseline (bench/redisnode): the same application, engine, entity database and JSON twin behind the same gateway; the session is read from Redis (GET), decoded and materialized before, and encoded and written (SET) after, every interaction.", group3(float64(b.cfg.interactions), 0))
	tr := shopper.Transport(4)
	defer tr.CloseIdleConnections()
	for _, st := range stacks {
		if _, err := walk(ctx, st.url, tr, min(100, b.cfg.interactions)); err != nil {
			return fmt.Errorf("warm-up %s: %w", st.id, err)
		}
	}
	p50 := map[string][]float64{}
	p99 := map[string][]float64{}
	for r := range b.cfg.runs {
		var line []string
		for k := range stacks {
			st := stacks[(k+r)%len(stacks)]
			ds, err := walk(ctx, st.url, tr, b.cfg.interactions)
			if err != nil {
				return fmt.Errorf("%s: %w", st.id, err)
			}
			p50[st.id] = append(p50[st.id], millis(percentile(ds, 50)))
			p99[st.id] = append(p99[st.id], millis(percentile(ds, 99)))
			line = append(line, st.id+" "+format(last(p50[st.id]), unitMillis))
		}
		b.progress("latency run %d/%d, p50: %s", r+1, b.cfg.runs, strings.Join(line, ", "))
	}
	for _, spec := range b.stackSpecs() {
		for _, p := range []struct {
			id   string
			vals map[string][]float64
		}{{"p50", p50}, {"p99", p99}} {
			id, name := spec.id+"."+p.id, spec.title+", "+p.id
			if spec.kind == redisStack && b.redis != "" {
				sec.unavailable(id, name, unitMillis, b.redis)
				continue
			}
			sec.add(id, name, unitMillis, p.vals[spec.id])
		}
	}
	b.ratio(sec, "understudy_over_off.p50", "understudy (fsync every write) ÷ replication off, p50", p50, "understudy-always", "off")
	b.ratio(sec, "understudy_over_off.p99", "understudy (fsync every write) ÷ replication off, p99", p99, "understudy-always", "off")
	b.ratio(sec, "periodic_over_off.p50", "understudy (periodic fsync) ÷ replication off, p50", p50, "understudy-periodic", "off")
	b.ratio(sec, "understudy_over_redis.always.p50", "understudy ÷ Redis baseline, fsync every write, p50", p50, "understudy-always", "redis-always")
	b.ratio(sec, "understudy_over_redis.always.p99", "understudy ÷ Redis baseline, fsync every write, p99", p99, "understudy-always", "redis-always")
	b.ratio(sec, "understudy_over_redis.periodic.p50", "understudy ÷ Redis baseline, periodic fsync, p50", p50, "understudy-periodic", "redis-periodic")
	return nil
}

// ratio adds a row of vals[a]/vals[b], run by run.
func (b *bench) ratio(sec *Section, id, name string, vals map[string][]float64, a, c string) {
	if (strings.HasPrefix(a, "redis") || strings.HasPrefix(c, "redis")) && b.redis != "" {
		sec.unavailable(id, name, unitRatio, b.redis)
		return
	}
	sec.add(id, name, unitRatio, ratios(vals[a], vals[c]))
}

// walk makes n interactions, one at a time, starting a new session
// whenever one finishes, and returns their latencies.
func walk(ctx context.Context, url string, tr http.RoundTripper, n int) ([]time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	var s *shopper.Shopper
	for len(ds) < n {
		if s == nil || s.Finished() {
			s = shopper.New(int(customers.Add(1)), url, tr)
			if err := s.Start(ctx); err != nil {
				return ds, err
			}
		}
		a, err := s.Step(ctx)
		if err != nil {
			return ds, err
		}
		ds = append(ds, a.Took())
	}
	return ds, nil
}

// throughput runs -clients concurrent sessions, each one request at a
// time with no think time, against each stack, and counts acknowledged
// interactions per second.
func (b *bench) throughput(ctx context.Context, stacks []*stack) error {
	sec := b.rep.section("throughput", fmt.Sprintf("3. Throughput: %s concurrent sessions", group3(float64(b.cfg.clients), 0)))
	sec.Note = fmt.Sprintf("%s browser-like clients in the benchmark's process (which shares the machine), each walking its own session one request at a time with no think time and starting a new one when it finishes, through the gateway. "+
		"Acknowledged interactions (POSTs answered 200 with the next page) per second over %s, after %s of load. Nodes run with -new-per-minute -1 and a session cap far above what a run creates. "+
		"The group's lease is %s unless stated; *failovers* counts the epochs the group went through during the measured part of a run (a live primary failed over under overload). "+
		"*Server CPU per interaction* adds the CPU time (/proc) of the stack's processes during the measured part, divided by the interactions; the client's is shown beside it.",
		group3(float64(b.cfg.clients), 0), b.cfg.duration, b.cfg.warmup, b.cfg.lease)
	rates := map[string][]float64{}
	failovers := map[string][]float64{}
	cpu := map[string]map[string][]float64{} // stack, component: CPU µs per interaction, per run
	busy := map[string][]float64{}
	var errs []string
	for r := range b.cfg.runs {
		var line []string
		for k := range stacks {
			st := stacks[(k+r)%len(stacks)]
			res, err := b.load(ctx, st)
			if err != nil {
				return fmt.Errorf("%s: %w", st.id, err)
			}
			if res.failed > 0 {
				errs = append(errs, fmt.Sprintf("%s run %d: %d", st.id, r+1, res.failed))
			}
			rates[st.id] = append(rates[st.id], res.rate)
			failovers[st.id] = append(failovers[st.id], float64(res.failovers))
			if cpu[st.id] == nil {
				cpu[st.id] = map[string][]float64{}
			}
			for c, sec := range res.cpu {
				cpu[st.id][c] = append(cpu[st.id][c], sec/float64(max(res.n, 1))*1e6)
			}
			busy[st.id] = append(busy[st.id], res.busy*100)
			l := st.id + " " + format(res.rate, unitRate)
			if res.failovers > 0 {
				l += fmt.Sprintf(" (%d failovers)", res.failovers)
			}
			line = append(line, l)
		}
		b.progress("throughput run %d/%d: %s", r+1, b.cfg.runs, strings.Join(line, ", "))
	}
	if len(errs) > 0 {
		sec.Note += " Interactions that failed (their clients started a new session): " + strings.Join(errs, "; ") + "."
	}
	specs := append(b.stackSpecs(), b.longLeaseSpecs()...)
	for _, spec := range specs {
		if spec.kind == redisStack && b.redis != "" {
			sec.unavailable(spec.id, spec.title, unitRate, b.redis)
			continue
		}
		sec.add(spec.id, spec.title, unitRate, rates[spec.id])
	}
	b.ratio(sec, "understudy_over_redis.always", "understudy ÷ Redis baseline, fsync every write", rates, "understudy-always", "redis-always")
	b.ratio(sec, "understudy_over_redis.periodic", "understudy ÷ Redis baseline, periodic fsync", rates, "understudy-periodic", "redis-periodic")
	b.ratio(sec, "understudy_over_off.always", "understudy (fsync every write) ÷ replication off", rates, "understudy-always", "off")
	b.ratio(sec, "understudy_over_off.periodic", "understudy (periodic fsync) ÷ replication off", rates, "understudy-periodic", "off")
	if lease := b.cfg.throughputLease; len(b.longLeaseSpecs()) > 0 {
		b.ratio(sec, "lease.understudy_over_redis.always", "lease "+lease.String()+": understudy ÷ Redis baseline, fsync every write", rates, "understudy-always-lease", "redis-always")
		b.ratio(sec, "lease.understudy_over_redis.periodic", "lease "+lease.String()+": understudy ÷ Redis baseline, periodic fsync", rates, "understudy-periodic-lease", "redis-periodic")
		b.ratio(sec, "lease.understudy_over_off.always", "lease "+lease.String()+": understudy (fsync every write) ÷ replication off", rates, "understudy-always-lease", "off-lease")
	}
	for _, spec := range specs {
		if spec.kind == redisStack {
			continue
		}
		sec.add(spec.id+".failovers", spec.title+": failovers during a run", unitCount, failovers[spec.id])
	}
	// What bounds the figures: the CPU each process spent per interaction.
	for _, spec := range specs {
		id, name := spec.id+".cpu", spec.title+": server CPU per interaction"
		if spec.kind == redisStack && b.redis != "" {
			sec.unavailable(id, name, unitMicros, b.redis)
			continue
		}
		var total []float64
		var parts []string
		for _, c := range components {
			vals := cpu[spec.id][c]
			if len(vals) == 0 {
				continue
			}
			if c != "client" {
				for i, v := range vals {
					if i == len(total) {
						total = append(total, 0)
					}
					total[i] += v
				}
			}
			parts = append(parts, c+" "+format(med(vals), unitMicros))
		}
		row := sec.add(id, name, unitMicros, total)
		row.Note = strings.Join(parts, ", ") + fmt.Sprintf("; machine %.0f%% busy", med(busy[spec.id]))
	}
	return nil
}

// components of a stack whose CPU the throughput runs account: nodes by
// their role when a run's measured part starts.
var components = []string{"gateway+NATS", "primary", "backup", "redis-server", "client"}

// loadResult is one throughput run.
type loadResult struct {
	rate   float64
	n      int64              // acknowledged interactions counted
	failed int64              // interactions that failed meanwhile
	cpu    map[string]float64 // CPU seconds per component meanwhile
	busy   float64            // share of the machine's CPU busy meanwhile
	// failovers is how many epochs the group went through meanwhile.
	failovers int
}

// pids returns the processes of a stack by component.
func (st *stack) pids() map[string]int {
	m := map[string]int{"client": os.Getpid()}
	if len(st.local.Gateways) > 0 {
		m["gateway+NATS"] = st.local.Gateways[0].PID()
	}
	for _, n := range st.nodes {
		p := st.local.Nodes[n]
		if p == nil {
			continue
		}
		role := "backup"
		if ns, err := st.node(n); err == nil && ns.Role == "primary" {
			role = "primary"
		}
		if _, taken := m[role]; taken {
			role = "backup"
		}
		m[role] = p.PID()
	}
	if st.redis != nil {
		m["redis-server"] = st.redis.PID()
	}
	return m
}

// load runs the clients against url for the warm-up and the measured
// duration, and returns the rate of acknowledged interactions in the
// measured part and how many interactions failed.
func (b *bench) load(ctx context.Context, st *stack) (loadResult, error) {
	url := st.url
	tr := shopper.Transport(b.cfg.clients + 16)
	defer tr.CloseIdleConnections()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var done, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range b.cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s *shopper.Shopper
			for lctx.Err() == nil {
				if s == nil || s.Finished() {
					s = shopper.New(int(customers.Add(1)), url, tr)
					if err := s.Start(lctx); err != nil {
						if lctx.Err() == nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, &err)
							s = nil
						}
						continue
					}
				}
				if _, err := s.Step(lctx); err != nil {
					if lctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, &err)
						s = nil // start again, as a person would
					}
					continue
				}
				done.Add(1)
			}
		}()
	}
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := sleep(b.cfg.warmup); err != nil {
		cancel()
		wg.Wait()
		return loadResult{}, err
	}
	pids := st.pids()
	cpu0 := map[string]float64{}
	for c, pid := range pids {
		cpu0[c] = cpuSeconds(pid)
	}
	g0, _ := st.group()
	busy0, total0 := machineCPU()
	n0, f0, t0 := done.Load(), failed.Load(), time.Now()
	profiled := func() {}
	if len(st.debug) > 0 && !st.profiled {
		st.profiled = true
		profiled = b.profile(st, b.cfg.duration)
	}
	err := sleep(b.cfg.duration)
	n1, f1, t1 := done.Load(), failed.Load(), time.Now()
	busy1, total1 := machineCPU()
	g1, _ := st.group()
	res := loadResult{n: n1 - n0, failed: f1 - f0, cpu: map[string]float64{}, busy: (busy1 - busy0) / (total1 - total0),
		failovers: int(g1.Epoch) - int(g0.Epoch)}
	for c, pid := range pids {
		res.cpu[c] = cpuSeconds(pid) - cpu0[c]
	}
	cancel()
	wg.Wait()
	profiled()
	if err != nil {
		return res, err
	}
	res.rate = float64(res.n) / t1.Sub(t0).Seconds()
	if n1 == 0 {
		if e := firstErr.Load(); e != nil {
			return res, fmt.Errorf("no interaction succeeded: %w", *e)
		}
		return res, errors.New("no interaction succeeded")
	}
	return res, nil
}
