package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"understudy/bench/redisserver"
)

// tiny is the smallest configuration that still makes every row: a test
// of the command, not of the figures.
var tiny = []string{"-runs", "2", "-ops", "20", "-interactions", "10", "-clients", "10", "-duration", "500ms", "-warmup", "200ms",
	"-injuries", "1", "-held", "20,50", "-failover-clients", "2", "-codec-benchtime", "5x", "-overload-duration", "500ms"}

// expectedRows lists the rows of a run of every measurement with -held
// 20,50.
func expectedRows() []string {
	var ids []string
	add := func(format string, args ...any) { ids = append(ids, fmt.Sprintf(format, args...)) }
	for _, d := range []string{"always", "periodic"} {
		for _, v := range []string{"jetstream", "understudy", "understudy_sealed", "redis", "redis_encode"} {
			add("replication.%s.%s.p50", d, v)
			add("replication.%s.%s.p99", d, v)
		}
		add("replication.%s.understudy_over_jetstream.p50", d)
		add("replication.%s.understudy_over_jetstream.p99", d)
		add("replication.%s.sealed_over_understudy.p50", d)
		add("replication.%s.sealed_over_understudy.p99", d)
		add("replication.%s.understudy_over_redis.p50", d)
	}
	stacks := []string{"understudy-always", "understudy-periodic", "off", "redis-always", "redis-periodic"}
	for _, s := range stacks {
		add("latency.%s.p50", s)
		add("latency.%s.p99", s)
		add("throughput.%s", s)
		add("throughput.%s.cpu", s)
		if !strings.HasPrefix(s, "redis") {
			add("throughput.%s.failovers", s)
			add("throughput.%s-lease", s)
			add("throughput.%s-lease.cpu", s)
			add("throughput.%s-lease.failovers", s)
		}
	}
	for _, r := range []string{"understudy_over_off.p50", "understudy_over_off.p99", "periodic_over_off.p50",
		"understudy_over_redis.always.p50", "understudy_over_redis.always.p99", "understudy_over_redis.periodic.p50"} {
		add("latency.%s", r)
	}
	for _, r := range []string{"understudy_over_redis.always", "understudy_over_redis.periodic", "understudy_over_off.always", "understudy_over_off.periodic",
		"lease.understudy_over_redis.always", "lease.understudy_over_redis.periodic", "lease.understudy_over_off.always"} {
		add("throughput.%s", r)
	}
	for _, k := range []string{"kill", "stop"} {
		for _, n := range []int{20, 50} {
			for _, p := range []string{"p50", "p99", "max"} {
				add("failover.%s.%d.%s", k, n, p)
			}
		}
		add("failover.%s.50_over_20.p50", k)
		add("failover.%s.50_over_20.p99", k)
	}
	for _, n := range []int{20, 50} {
		add("failover.errors.%d", n)
		for _, r := range []string{"payload", "subscriber.took", "subscriber.heap", "subscriber.overhead", "subscriber.ratio",
			"process.took", "process.rss", "process.rss_per_session"} {
			add("catchup.%d.%s", n, r)
		}
	}
	add("catchup.process.rss_growth.20_50")
	add("catchup.process.rss_growth_beyond_snapshot.20_50")
	for _, c := range []string{"cbor", "gob", "json"} {
		add("codec.%s.time", c)
		add("codec.%s.size", c)
		add("codec.%s.alloc", c)
	}
	for _, k := range []string{"1x", "2x", "4x"} {
		for _, r := range []string{"offered", "acked", "p50", "p99", "max", "errors", "failovers", "failed_renewals"} {
			add("overload.%s.%s", k, r)
		}
	}
	add("codec.gob_over_cbor")
	add("codec.json_over_cbor")
	return ids
}

// TestEveryRow runs the whole benchmark in a tiny configuration and
// checks that the table and the JSON hold every row, with figures. It
// needs redis-server: without it the test fails in CI and is skipped
// elsewhere.
func TestEveryRow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes: not in -short")
	}
	if err := redisserver.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI must run this test)", err)
		}
		t.Skip(err)
	}
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	args := append([]string{"-json", jsonPath, "-dir", t.TempDir()}, tiny...)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n--- stderr:\n%s", err, stderr.String())
	}
	var rep Report
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Row{}
	for _, s := range rep.Sections {
		for _, r := range s.Rows {
			if byID[r.ID] != nil {
				t.Errorf("row %s twice", r.ID)
			}
			byID[r.ID] = r
		}
	}
	table := stdout.String()
	for _, id := range expectedRows() {
		r := byID[id]
		switch {
		case r == nil:
			t.Errorf("no row %s in the JSON", id)
			continue
		case r.Unavailable != "":
			t.Errorf("row %s unavailable: %s", id, r.Unavailable)
		case r.Runs < 1:
			t.Errorf("row %s has no runs", id)
		}
		if !strings.Contains(table, "| "+r.Name) {
			t.Errorf("row %s (%q) not in the table", id, r.Name)
		}
		delete(byID, id)
	}
	for id := range byID {
		t.Errorf("row %s is not expected: add it to expectedRows", id)
	}
	if len(rep.Goals) < 15 {
		t.Errorf("%d goals judged", len(rep.Goals))
	}
	for _, g := range rep.Goals {
		if g.Met == nil {
			t.Errorf("goal %s not judged: %s", g.ID, g.Measured)
		}
		if !strings.Contains(table, "| "+g.Goal+" |") {
			t.Errorf("goal %s not in the table", g.ID)
		}
	}
	if !strings.Contains(stderr.String(), "throughput run 2/2") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	// -render prints the same table from the JSON.
	var again bytes.Buffer
	if err := run(context.Background(), []string{"-render", jsonPath}, &again, &stderr); err != nil {
		t.Fatal(err)
	}
	if again.String() != table {
		t.Errorf("-render prints another table:\n%s", again.String())
	}
}

// TestWithoutRedis: without redis-server the command says how to install
// it, marks the Redis rows unavailable, and measures the rest.
func TestWithoutRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server; this measurement needs no go either
	var stdout, stderr bytes.Buffer
	args := append([]string{"-only", "replication", "-dir", t.TempDir()}, tiny...)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "apt-get install -y redis-server") {
		t.Errorf("no install hint on stderr:\n%s", stderr.String())
	}
	table := stdout.String()
	for _, want := range []string{
		"| always: Redis SET, p50 | unavailable: redis-server not installed |",
		"| periodic: understudy ÷ Redis encode + SET, p50 | unavailable: redis-server not installed |",
		"| always: JetStream publish (the floor), p50 | ",
		"| replication ≤ 1.2× the JetStream floor at p50, always fsync |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
