//go:build e2e

package e2e

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"understudy/internal/deploy"
)

// TestGracefulSwitchover: SIGTERM on the primary under load. It finishes
// the interactions in flight, releases the group, and the backup claims at
// once; no request fails and no answer is lost.
func TestGracefulSwitchover(t *testing.T) {
	l := local(t, "node-a", "node-b")
	shoppers := load(t, l.GatewayURL(0), *sessions, func() {
		if err := l.Nodes["node-a"].Stop(20 * time.Second); err != nil {
			t.Error(err)
		}
		t.Log("node-a stopped with SIGTERM")
	})
	verify(t, shoppers)
	st := waitOwner(t, l, "node-b")
	if st.Epoch != 2 {
		t.Errorf("epoch %d after one handover", st.Epoch)
	}
}

// TestFencedRejoin: the old primary, restarted with the primary command
// after a failover, finds the group held and runs as a backup; it catches
// up, and a second failover back to it works.
func TestFencedRejoin(t *testing.T) {
	l := local(t, "node-a", "node-b")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := load(t, l.GatewayURL(0), *sessions/2, func() { l.Nodes["node-a"].Kill() })
	verify(t, first)
	waitOwner(t, l, "node-b")
	if _, err := l.StartNode(ctx, "node-a", "primary"); err != nil {
		t.Fatal(err)
	}
	st := waitOwner(t, l, "node-b")
	for _, m := range st.Members {
		if m.Node == "node-a" && m.Role != "backup" {
			t.Fatalf("restarted node-a runs as %s", m.Role)
		}
	}
	second := load(t, l.GatewayURL(0), *sessions/2, func() { l.Nodes["node-b"].Kill() })
	verify(t, second)
	if st := waitOwner(t, l, "node-a"); st.Epoch != 3 {
		t.Errorf("epoch %d after two failovers", st.Epoch)
	}
}

var natsBin = sync.OnceValues(func() (string, error) {
	root, err := deploy.ModuleRoot(".")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "understudy-e2e-nats")
	if err != nil {
		return "", err
	}
	return deploy.BuildNATS(context.Background(), root, dir, os.Stderr)
})

// external starts n nats-server processes and a deployment that uses them.
func external(t *testing.T, n int, nodes ...string) (*deploy.Local, *deploy.NATSCluster) {
	t.Helper()
	return externalWith(t, n, nil, nodes...)
}

// externalWith is external with more flags for every node.
func externalWith(t *testing.T, n int, nodeArgs []string, nodes ...string) (*deploy.Local, *deploy.NATSCluster) {
	t.Helper()
	bin, err := natsBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if *keep {
		dir, _ = os.MkdirTemp("", "understudy-e2e-"+t.Name())
		t.Logf("data and logs in %s", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := deploy.StartNATS(ctx, bin, dir, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	replicas := "1"
	if n >= 3 {
		replicas = "3"
	}
	l, err := deploy.StartLocal(ctx, deploy.Config{Bin: bins, Dir: dir, ExternalNATS: nc.URL(),
		GatewayArgs: []string{"-replicas", replicas}, NodeArgs: append([]string{"-replicas", replicas}, nodeArgs...)})
	if err != nil {
		dumpLogs(t, dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		if t.Failed() {
			dumpLogs(t, dir)
		}
	})
	for i, name := range nodes {
		role := "backup"
		if i == 0 {
			role = "primary"
		}
		if _, err := l.StartNode(ctx, name, role); err != nil {
			t.Fatal(err)
		}
	}
	waitOwner(t, l, nodes[0])
	return l, nc
}

// TestExternalNATSTwoGateways: an external nats-server process, two
// gateways side by side with the clients spread over both, and the primary
// killed: both gateways route to the new primary, and exactly one
// promotion happens.
func TestExternalNATSTwoGateways(t *testing.T) {
	l, _ := external(t, 1, "node-a", "node-b")
	ctx := context.Background()
	if _, err := l.StartGateway(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var a, b []*shopper
	kill := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); a = load(t, l.GatewayURL(0), *sessions/2, func() { <-kill }) }()
	go func() {
		defer wg.Done()
		b = load(t, l.GatewayURL(1), *sessions/2, func() {
			l.Nodes["node-a"].Kill()
			close(kill)
		})
	}()
	wg.Wait()
	verify(t, append(a, b...))
	st := waitOwner(t, l, "node-b")
	if st.Epoch != 2 {
		t.Errorf("epoch %d: want exactly one promotion", st.Epoch)
	}
	for i := range 2 {
		resp, err := newShopper(i, l.GatewayURL(i)).http.Get(l.GatewayURL(i) + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if node := resp.Header.Get("Understudy-Node"); node != "node-b" {
			t.Errorf("gateway %d routes to %q", i+1, node)
		}
	}
}

// TestNATSClusterLosesAServer: a 3-server NATS cluster (separate
// processes, 3-replica stream and bucket); under load one NATS server is
// killed and then the primary: every session finishes, nothing lost,
// nothing applied twice.
func TestNATSClusterLosesAServer(t *testing.T) {
	l, nc := external(t, 3, "node-a", "node-b")
	shoppers := load(t, l.GatewayURL(0), *sessions/2, func() {
		nc.Servers[1].Kill()
		t.Log("killed nats2")
		time.Sleep(200 * time.Millisecond) // load on the reduced cluster
		l.Nodes["node-a"].Kill()
		t.Log("killed node-a")
	})
	verify(t, shoppers)
	st := waitOwner(t, l, "node-b")
	if st.Epoch != 2 {
		t.Errorf("epoch %d", st.Epoch)
	}
}
