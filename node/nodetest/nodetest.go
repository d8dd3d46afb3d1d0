// Package nodetest runs serving nodes inside tests, against a real NATS
// server (see broker/brokertest): the configuration tests start from, and
// a node run until the test ends.
package nodetest

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/group"
	"understudy/model"
	"understudy/node"
)

// Config returns the configuration tests start from: a loopback listener
// on a free port, a 300 ms lease with 100 ms heartbeats, sessions that do
// not idle out during a test, and logs to tb.
func Config(tb testing.TB, nats broker.Config, name string, role node.Role) node.Config {
	return node.Config{
		Node: name, Role: role, Listen: "127.0.0.1:0", NATS: nats,
		Group: group.Config{Lease: 300 * time.Millisecond, Heartbeat: 100 * time.Millisecond},
		Idle:  time.Hour, Logger: brokertest.Logger(tb),
	}
}

// Running is a node run by Start.
type Running struct {
	Node *node.Node
	URL  string // http://host:port

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs a node with cfg until the test ends (or Stop), and waits
// until it is ready: caught up as a backup, or serving as the primary when
// cfg.Role is node.RolePrimary.
func Start(tb testing.TB, cfg node.Config, reg *model.Registry, res model.Resolver) *Running {
	tb.Helper()
	n, err := node.New(cfg, reg, res)
	if err != nil {
		tb.Fatal(err)
	}
	addr, err := n.Listen()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Node: n, URL: "http://" + addr.String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	tb.Cleanup(r.Stop)
	var (
		st node.Status
		ok bool
	)
	for deadline := time.Now().Add(readyWithin); ; time.Sleep(10 * time.Millisecond) {
		st, ok = r.Status()
		if ok && st.Ready && (cfg.Role != node.RolePrimary || st.Role == "primary") {
			return r
		}
		select {
		case err := <-r.done:
			r.done <- err // for Stop
			tb.Fatalf("%s stopped before it was ready: %v", cfg.Node, err)
		default:
		}
		if time.Now().After(deadline) {
			break
		}
	}
	// A node that hangs while it starts: say where every goroutine is, so
	// that a rare hang seen once in CI can be found from its log.
	var stacks strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	tb.Fatalf("%s not ready within %v: status %+v (answered %v)\n%s", cfg.Node, readyWithin, st, ok, stacks.String())
	return nil
}

// readyWithin bounds how long Start waits for a node to be ready.
const readyWithin = 20 * time.Second

// Status reads the node's /understudy/status; ok is false when it does
// not answer with one.
func (r *Running) Status() (node.Status, bool) {
	var st node.Status
	resp, err := http.Get(r.URL + "/understudy/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// Stop stops the node (it hands over if it is the primary) and waits until
// it has. A second Stop does nothing.
func (r *Running) Stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
}
