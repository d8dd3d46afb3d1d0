// Command bench measures, in one run on this machine, what understudy
// costs and what it buys, side by side with what a team would otherwise
// do: keep sessions in Redis, or lose them on a crash.
//
//	go run ./cmd/bench                      # the full run (about 20 minutes on 2 cores)
//	go run ./cmd/bench -quick               # about 5 minutes: fewer operations, injuries and sessions
//	go run ./cmd/bench -json bench.json     # also write the figures as JSON
//	go run ./cmd/bench -render bench.json   # print the table of such a file again
//
// It starts everything it needs on loopback: the project's own gateway,
// primary and backup binaries (built with internal/deploy), the Redis
// baseline (bench/redisnode, built here), and redis-server processes on
// free ports with their data in a temporary directory. Without
// redis-server the Redis rows are marked unavailable and the rest runs.
//
// Six measurements, each run several times (-runs): replication cost per
// interaction against the JetStream floor and a Redis SET; interaction
// latency through the whole stack; throughput with 1,000 concurrent
// sessions; failover time after kill -9 and SIGSTOP with 1,000 and
// 100,000 sessions held; a new backup's catch-up and memory; and the
// codec against gob and JSON. The table (Markdown) goes to stdout,
// progress to stderr. Every comparison is a ratio of figures measured in
// the same run; absolute figures belong to the machine.
//
// Two shortcuts keep the run short, both said in the table: the
// failover stacks' stream is seeded with the sessions held before the
// gateway opens it (demo sessions published as the first primary would
// have, rather than made one by one through HTTP), and catch-up is
// measured on subscriber's own stream of 4 KiB sessions, on a NATS server
// in this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"understudy/bench/redisserver"
	"understudy/internal/deploy"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// phases, in the order they run.
var phases = []string{"codec", "replication", "latency", "throughput", "failover", "catchup", "overload"}

// config is what the flags set.
type config struct {
	profile          string
	quick            bool
	runs             int
	jsonPath         string
	render           string
	dir              string
	keep             bool
	only             map[string]bool
	ops              int
	interactions     int
	clients          int
	duration         time.Duration
	warmup           time.Duration
	syncInterval     time.Duration
	injuries         int
	held             []int
	failoverClients  int
	codecBenchtime   string
	overloadDuration time.Duration
	overloadPlot     string
	lease            time.Duration
	throughputLease  time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./cmd/bench [flags]\n\nMeasures understudy against the JetStream floor and a Redis session store, on this machine, in one run.\nThe table goes to stdout, progress to stderr.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.BoolVar(&c.quick, "quick", false, "a short run (a few minutes): fewer operations, injuries and sessions; flags given explicitly still win")
	fs.IntVar(&c.runs, "runs", 5, "runs of each measurement (median, min and max are over them)")
	fs.StringVar(&c.jsonPath, "json", "", "also write the figures to this JSON file")
	fs.StringVar(&c.render, "render", "", "measure nothing: print the table of a JSON file written by -json")
	fs.StringVar(&c.dir, "dir", "", "directory for data and logs (default: a temporary directory, removed afterwards)")
	fs.BoolVar(&c.keep, "keep", false, "keep the data and logs directory")
	only := fs.String("only", strings.Join(phases, ","), "measurements to run, comma-separated: "+strings.Join(phases, ", "))
	fs.IntVar(&c.ops, "ops", 2000, "replication: operations per variant per run")
	fs.IntVar(&c.interactions, "interactions", 1000, "latency: interactions per stack per run")
	fs.IntVar(&c.clients, "clients", 1000, "throughput: concurrent sessions")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "throughput: length of each run")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "throughput: load before each run is counted")
	fs.DurationVar(&c.syncInterval, "sync-interval", time.Second, "periodic fsync: JetStream's sync interval (Redis's everysec is 1s)")
	fs.IntVar(&c.injuries, "injuries", 30, "failover: injuries of each kind (kill -9, SIGSTOP) per session count")
	held := fs.String("held", "1000,100000", "failover and catch-up: sessions held, comma-separated")
	fs.IntVar(&c.failoverClients, "failover-clients", 8, "failover: sessions under load, each with one request at a time and no think time")
	fs.StringVar(&c.codecBenchtime, "codec-benchtime", "1s", "codec: go test -benchtime of each run")
	fs.DurationVar(&c.overloadDuration, "overload-duration", 60*time.Second, "overload: how long each offered load (1×, 2×, 4× saturation) runs")
	fs.StringVar(&c.profile, "profile", "", "throughput: write CPU profiles (pprof) of each understudy stack's gateway (with NATS) and nodes over the measured part of its first run to this directory; the profiling costs those runs a few percent")
	fs.StringVar(&c.overloadPlot, "overload-plot", "", "overload: also draw offered load against throughput and p99 to this PNG file")
	fs.DurationVar(&c.lease, "lease", 300*time.Millisecond, "the group's lease (gateway and nodes)")
	fs.DurationVar(&c.throughputLease, "throughput-lease", 3*time.Second, "throughput: also measure the understudy stacks with this lease, long enough that overload does not fail a live primary over (0: do not)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		quick := map[string]func(){
			"ops":               func() { c.ops = 300 },
			"interactions":      func() { c.interactions = 200 },
			"duration":          func() { c.duration = 3 * time.Second },
			"warmup":            func() { c.warmup = 2 * time.Second },
			"injuries":          func() { c.injuries = 5 },
			"held":              func() { *held = "1000,10000" },
			"codec-benchtime":   func() { c.codecBenchtime = "200ms" },
			"overload-duration": func() { c.overloadDuration = 10 * time.Second },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	c.only = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(phases, p) {
			return c, fmt.Errorf("-only %q: want some of %s", p, strings.Join(phases, ", "))
		}
		c.only[p] = true
	}
	for _, h := range strings.Split(*held, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 1 {
			return c, fmt.Errorf("-held %q: want positive counts", *held)
		}
		c.held = append(c.held, n)
	}
	slices.Sort(c.held)
	switch {
	case c.runs < 1 || c.ops < 1 || c.interactions < 1 || c.clients < 1 || c.injuries < 1 || c.failoverClients < 1:
		return c, fmt.Errorf("counts must be positive")
	case c.duration <= 0 || c.overloadDuration <= 0 || c.warmup < 0 || c.syncInterval <= 0 || c.lease < 30*time.Millisecond || c.throughputLease < 0:
		return c, fmt.Errorf("durations must be positive (lease at least 30ms)")
	}
	return c, nil
}

// bench is one run of the command.
type bench struct {
	cfg     config
	rep     *Report
	stderr  io.Writer
	start   time.Time
	dir     string
	root    string
	bins    deploy.Binaries
	redis   string // redis-server's absence, or ""
	mu      sync.Mutex
	cleanup []func()
}

// progress writes a line of progress to stderr.
func (b *bench) progress(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// atExit registers cleanup that runs when the command ends, last first.
func (b *bench) atExit(f func()) {
	b.mu.Lock()
	b.cleanup = append(b.cleanup, f)
	b.mu.Unlock()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.render != "" {
		rep, err := ReadJSON(cfg.render)
		if err != nil {
			return err
		}
		rep.Markdown(stdout)
		return nil
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{cfg: cfg, stderr: stderr, start: time.Now()}
	b.root, err = deploy.ModuleRoot(".")
	if err != nil {
		return err
	}
	b.dir = cfg.dir
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "understudy-bench-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(b.dir)
		}
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	b.dir, _ = filepath.Abs(b.dir)
	defer func() {
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
	}()

	b.rep = &Report{
		Command: strings.Join(append([]string{"go run ./cmd/bench"}, args...), " "),
		Started: b.start, Quick: cfg.quick, Machine: describeMachine(b.dir),
		Settings: map[string]any{
			"runs": cfg.runs, "ops": cfg.ops, "interactions": cfg.interactions, "clients": cfg.clients,
			"duration": cfg.duration.String(), "warmup": cfg.warmup.String(), "sync_interval": cfg.syncInterval.String(),
			"injuries": cfg.injuries, "held": cfg.held, "failover_clients": cfg.failoverClients,
			"codec_benchtime": cfg.codecBenchtime, "lease": cfg.lease.String(), "throughput_lease": cfg.throughputLease.String(), "only": sortedKeys(cfg.only),
			"overload_duration": cfg.overloadDuration.String(),
		},
	}
	if err := redisserver.Available(); err != nil {
		b.redis = "redis-server not installed"
		fmt.Fprintf(stderr, "\n*** redis-server is not installed: the Redis rows are marked unavailable.\n*** %s\n\n", redisserver.InstallHint)
	} else if s, err := redisserver.Start(ctx, filepath.Join(b.dir, "redis-version"), redisserver.EverySec); err == nil {
		b.rep.Machine.Redis = s.Version
		s.Close()
	} else {
		b.redis = "redis-server does not start: " + err.Error()
		fmt.Fprintf(stderr, "\n*** redis-server does not start (%v): the Redis rows are marked unavailable.\n\n", err)
	}
	b.progress("data and logs in %s; machine: %s", b.dir, b.rep.Machine)

	steps := []struct {
		phase string
		run   func(context.Context) error
	}{
		{"codec", b.codec},
		{"replication", b.replication},
		{"latency", b.stacks}, // latency and throughput share their stacks
		{"failover", b.failover},
		{"catchup", b.catchup},
		{"overload", b.overload},
	}
	for _, s := range steps {
		want := cfg.only[s.phase]
		switch s.phase {
		case "latency":
			want = cfg.only["latency"] || cfg.only["throughput"]
		}
		if !want {
			continue
		}
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %w", s.phase, err)
		}
	}
	b.goals()
	b.rep.Took = time.Since(b.start).Round(time.Second).String()
	b.rep.Machine.LoadAfter = loadAvg()
	b.rep.Markdown(stdout)
	if cfg.jsonPath != "" {
		if err := b.rep.WriteJSON(cfg.jsonPath); err != nil {
			return err
		}
		b.progress("figures written to %s", cfg.jsonPath)
	}
	return nil
}

// binaries builds the gateway, primary, backup and the Redis baseline
// once.
func (b *bench) binaries(ctx context.Context) (deploy.Binaries, string, error) {
	dir := filepath.Join(b.dir, "bin")
	redisnode := filepath.Join(dir, "redisnode")
	if b.bins.Gateway != "" {
		return b.bins, redisnode, nil
	}
	b.progress("building gateway, primary, backup and bench/redisnode")
	bins, err := deploy.Build(ctx, b.root, dir, b.stderr)
	if err != nil {
		return bins, "", err
	}
	if err := goCmd(ctx, b.root, b.stderr, "build", "-o", redisnode, "./bench/redisnode"); err != nil {
		return bins, "", err
	}
	b.bins = bins
	return bins, redisnode, nil
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for _, p := range phases {
		if m[p] {
			out = append(out, p)
		}
	}
	return out
}
