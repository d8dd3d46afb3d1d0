package group

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
)

// TestVersionsFromHeartbeats: what every live member can materialize is
// what the members' heartbeats announce, and only the live ones count:
// a member that stops counts no more once its heartbeats are stale, and
// one that announces nothing can be trusted with nothing.
func TestVersionsFromHeartbeats(t *testing.T) {
	srv := brokertest.Start(t)
	c := newCluster(t, srv)
	c.apps = map[string][]string{"a": {"quote@1", "card@1"}, "b": {"quote@2", "card@1", "quote@1"}}
	nc := srv.Connect(t)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(nc, kv, MonitorConfig{Logger: brokertest.Logger(t)})
	if err := mon.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	const fresh = 200 * time.Millisecond // four heartbeats of the test members
	if v := mon.Versions(fresh); v.Known || v.Can("quote", 1) {
		t.Fatalf("members known before a window was listened to: %+v", v)
	}

	a := c.member("a")
	c.member("b")
	until := func(what string, cond func(Versions) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			v := mon.Versions(fresh)
			if cond(v) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never; last %+v", what, v)
			}
			time.Sleep(10 * time.Millisecond) // polling heartbeats
		}
	}
	until("a and b heard", func(v Versions) bool { return v.Known && len(v.Members) == 2 })
	v := mon.Versions(fresh)
	if !v.Can("quote", 1) || !v.Can("card", 1) || v.Can("quote", 2) || v.Can("quote", 3) || v.Can("payment", 1) {
		t.Fatalf("with a (quote@1) and b (quote@1, quote@2): %+v", v)
	}

	a.Close(ctx)
	until("a no longer live", func(v Versions) bool { _, ok := v.Members["a"]; return !ok })
	if v := mon.Versions(fresh); !v.Can("quote", 2) {
		t.Fatalf("b alone: %+v", v)
	}

	c.member("old") // announces nothing
	until("old heard", func(v Versions) bool { _, ok := v.Members["old"]; return ok })
	if v := mon.Versions(fresh); v.Can("quote", 1) {
		t.Fatalf("a member that announces nothing can rebuild quote@1: %+v", v)
	}
}
