package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"understudy/bench/redisserver"
	"understudy/internal/deploy"
)

// stackKind is what serves the demo application behind the gateway.
type stackKind string

const (
	understudyStack stackKind = "understudy" // a primary and a backup, replication sync
	offStack        stackKind = "off"        // the same, replication off
	redisStack      stackKind = "redis"      // bench/redisnode: sessions in Redis
)

// stackSpec describes one whole stack: a gateway (with its embedded NATS)
// and what serves behind it.
type stackSpec struct {
	id    string // "understudy-always"
	title string
	kind  stackKind
	dur   durability
	// nodeArgs are added to its understudy nodes' command lines.
	nodeArgs []string
	// logInfo logs at info level (failovers, promotions) instead of warn.
	logInfo bool
	// lease is the group's lease; 0: -lease.
	lease time.Duration
}

// stack is a running stack.
type stack struct {
	stackSpec
	local *deploy.Local
	redis *redisserver.Server
	url   string // the gateway
	nodes []string
	// debug is where each process serves its profiles (-profile), by
	// name: "gateway+NATS" and the nodes'.
	debug    map[string]string
	profiled bool
}

// maxStore is the embedded NATS's store limit in the benchmark's stacks:
// 100,000 sessions with history and the throughput runs fit.
const maxStore = 16 << 30

// nodeArgs are added to every understudy node: no per-client limit on new
// sessions (every benchmark client is 127.0.0.1), room for the sessions
// held, and no idle expiry during a run.
var nodeArgs = []string{"-new-per-minute", "-1", "-max-sessions", "10000000", "-idle", "24h", "-log-level", "warn"}

// startStack starts a stack and waits until the gateway routes to its
// primary.
func (b *bench) startStack(ctx context.Context, spec stackSpec, nodes ...string) (*stack, error) {
	bins, redisnode, err := b.binaries(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.dir, spec.id)
	fsync := "always"
	if spec.dur.sync > 0 {
		fsync = spec.dur.sync.String()
	}
	leaseFor := b.cfg.lease
	if spec.lease > 0 {
		leaseFor = spec.lease
	}
	// Flags every process of the stack gets, after the defaults: the last
	// one given counts.
	common := []string{"-lease", leaseFor.String()}
	if spec.logInfo {
		common = append(common, "-log-level", "info")
	}
	cfg := deploy.Config{Bin: bins, Dir: dir,
		GatewayArgs: append([]string{"-nats-fsync", fsync, "-nats-max-store", strconv.Itoa(maxStore), "-log-level", "warn"}, common...)}
	st := &stack{stackSpec: spec, debug: map[string]string{}}
	debugArgs := func(name string) []string {
		if b.cfg.profile == "" || spec.kind == redisStack {
			return nil
		}
		addr, err := freeAddr()
		if err != nil {
			return nil
		}
		st.debug[name] = addr
		return []string{"-debug-listen", addr}
	}
	cfg.GatewayArgs = append(cfg.GatewayArgs, debugArgs("gateway+NATS")...)
	switch spec.kind {
	case understudyStack:
		cfg.NodeArgs = append(append(append([]string{}, nodeArgs...), common...), spec.nodeArgs...)
	case offStack:
		cfg.NodeArgs = append(append([]string{"-replication", "off"}, nodeArgs...), common...)
	case redisStack:
		rs, err := redisserver.Start(ctx, filepath.Join(dir, "redis"), spec.dur.redis)
		if err != nil {
			return nil, err
		}
		st.redis = rs
		b.atExit(func() { rs.Close() })
		cfg.Bin.Primary, cfg.Bin.Backup = redisnode, redisnode
		cfg.NodeArgs = append([]string{"-redis", rs.Addr, "-log-level", "warn"}, common...)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	l, err := deploy.StartLocal(sctx, cfg)
	if err != nil {
		return nil, err
	}
	st.local = l
	b.atExit(st.close)
	if len(nodes) == 0 {
		nodes = []string{"node-a", "node-b"}
		if spec.kind == redisStack {
			nodes = []string{"redis-a"}
		}
	}
	for i, n := range nodes {
		role := "backup"
		if i == 0 {
			role = "primary"
		}
		if _, err := l.StartNode(sctx, n, role, debugArgs(n)...); err != nil {
			return nil, fmt.Errorf("stack %s: %w", spec.id, err)
		}
	}
	st.nodes = nodes
	st.url = l.GatewayURL(0)
	if _, err := st.waitOwner(sctx, nodes[0]); err != nil {
		return nil, err
	}
	return st, nil
}

// freeAddr returns a localhost address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// profile fetches a CPU profile of each of the stack's processes over d,
// into the -profile directory as <stack>-<process>.pprof, in the
// background; wait returns once every one is written (or failed, said in
// the progress log).
func (b *bench) profile(st *stack, d time.Duration) (wait func()) {
	var wg sync.WaitGroup
	for name, addr := range st.debug {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(b.cfg.profile, st.id+"-"+strings.ReplaceAll(name, "+", "-")+".pprof")
			if err := fetchProfile(addr, d, path); err != nil {
				b.progress("profile of %s %s: %v", st.id, name, err)
				return
			}
			b.progress("profile of %s %s over %s: %s (go tool pprof -top %s)", st.id, name, d, path, path)
		}()
	}
	return wg.Wait
}

func fetchProfile(addr string, d time.Duration, path string) error {
	c := http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", addr, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (st *stack) close() {
	if st.local != nil {
		st.local.Close()
		st.local = nil
	}
	if st.redis != nil {
		st.redis.Close()
		st.redis = nil
	}
}

// groupStatus is the gateway's view of the group.
type groupStatus struct {
	Epoch   uint64 `json:"epoch"`
	Owner   string `json:"owner"`
	Members []struct {
		Node     string `json:"node"`
		Role     string `json:"role"`
		CaughtUp bool   `json:"caught_up"`
		Sessions int    `json:"sessions"`
		Gone     bool   `json:"gone"`
	} `json:"members"`
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

func (st *stack) group() (groupStatus, error) {
	var gs groupStatus
	resp, err := statusClient.Get(st.url + "/understudy/group")
	if err != nil {
		return gs, err
	}
	defer resp.Body.Close()
	return gs, json.NewDecoder(resp.Body).Decode(&gs)
}

// waitOwner waits until the gateway routes to node.
func (st *stack) waitOwner(ctx context.Context, node string) (groupStatus, error) {
	for {
		gs, err := st.group()
		if err == nil && gs.Owner == node {
			return gs, nil
		}
		select {
		case <-ctx.Done():
			return gs, fmt.Errorf("stack %s: owner is %q, want %s (%v)", st.id, gs.Owner, node, err)
		case <-time.After(20 * time.Millisecond): // polling the gateway's view
		}
	}
}

// nodeStatus is a node's /understudy/status.
type nodeStatus struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	Epoch    uint64 `json:"epoch"`
	Ready    bool   `json:"ready"`
	Reason   string `json:"reason"`
	Sessions int    `json:"sessions"`
	Held     int    `json:"held"`
	Lag      uint64 `json:"lag"`
}

func (st *stack) node(name string) (nodeStatus, error) {
	var ns nodeStatus
	resp, err := statusClient.Get(st.local.NodeURL(name) + "/understudy/status")
	if err != nil {
		return ns, err
	}
	defer resp.Body.Close()
	return ns, json.NewDecoder(resp.Body).Decode(&ns)
}

// waitNode polls a node's status until cond holds or timeout passes.
func (st *stack) waitNode(ctx context.Context, name string, timeout time.Duration, cond func(nodeStatus) bool) (nodeStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		ns, err := st.node(name)
		if err == nil && cond(ns) {
			return ns, nil
		}
		if time.Now().After(deadline) {
			return ns, fmt.Errorf("node %s: not as expected after %s: %+v (%v)", name, timeout, ns, err)
		}
		select {
		case <-ctx.Done():
			return ns, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
