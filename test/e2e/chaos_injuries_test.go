//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/internal/deploy"
)

// The injuries of the chaos schedule. Each waits until the system is whole
// again (a primary serving, the other node a ready backup) unless it is
// back to back by design; the next one may then follow within a second.
const (
	injKill         = "kill"          // kill -9 of the primary; restarted, it rejoins as a backup
	injPause        = "pause"         // SIGSTOP of the primary past its lease, then SIGCONT
	injNATSRestart  = "nats-restart"  // kill -9 of a NATS server, restarted
	injNATSLoss     = "nats-loss"     // cluster: one of three servers gone for 1-3 s
	injLeader       = "leader-change" // cluster: kill -9 of the primary and a leader stepdown of the stream and the bucket during the claim
	injInFlight     = "kill-in-flight"
	injDraining     = "kill-draining"
	injStopPromote  = "stop-promoting"
	injLatency      = "latency"      // 50-500 ms between the primary and NATS, one way or both, for 1-3 s
	injStarve       = "starve"       // the primary's CPU capped at 0.1% for 0.5-2 s
	injStarveLease  = "starve-lease" // the same for 250-450 ms: about the lease, so that it lapses and the primary may renew it again
	injGatewayReset = "gateway-restart"
)

// The injuries aimed at a moment, through a node's fault points (see
// nodecmd.FaultEnv): the backup is restarted armed, then the primary is
// killed, and the backup, promoted, dies (or stops) at the armed point:
//
//	kill-in-flight  at its n-th publish (before it, or after the ack and
//	                before the answer), with the clients' publishes in flight
//	kill-draining   after its takeover drained the stream, before its claim
//	stop-promoting  stopped by SIGSTOP after its drain or its claim, long
//	                enough for the other node to take over, then resumed
//
// The killed primary is restarted at once, so that it catches up and takes
// over a second time: two failovers back to back.

// chaos is one chaos run's deployment and what it did to it.
type chaos struct {
	t       *testing.T
	l       *deploy.Local
	nc      *deploy.NATSCluster
	proxies map[string]*brokertest.Proxy // per node; nil on a NATS cluster
	cpu     *cpuCap                      // nil where cgroups are not at hand
	kinds   []string

	mu       sync.Mutex
	injuries []injury
}

// injury is one entry of the run's history.
type injury struct {
	Kind   string    `json:"kind"`
	Node   string    `json:"node,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Epochs [2]uint64 `json:"epochs"` // the group's epoch before and after
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// newChaos starts the deployment: NATS (servers processes), two gateways
// that the clients share, and two nodes, each through its own proxy to
// NATS on a single server.
func newChaos(t *testing.T, servers int, nodeArgs []string) *chaos {
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
	nc, err := deploy.StartNATS(ctx, bin, dir, servers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	replicas := "1"
	if servers >= 3 {
		replicas = "3"
	}
	l, err := deploy.StartLocal(ctx, deploy.Config{Bin: bins, Dir: dir, ExternalNATS: nc.URL(),
		GatewayArgs: []string{"-replicas", replicas}, NodeArgs: append([]string{"-replicas", replicas}, nodeArgs...)})
	if err != nil {
		dumpLogs(t, dir)
		t.Fatal(err)
	}
	c := &chaos{t: t, l: l, nc: nc}
	t.Cleanup(func() {
		l.Close()
		if t.Failed() {
			dumpLogs(t, dir)
		}
	})
	if _, err := l.StartGateway(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c.kinds = []string{injKill, injPause, injNATSRestart, injInFlight, injDraining, injStopPromote, injGatewayReset}
	if servers == 1 {
		c.proxies = map[string]*brokertest.Proxy{}
		for _, n := range []string{"node-a", "node-b"} {
			c.proxies[n] = brokertest.NewProxy(t, strings.TrimPrefix(nc.URL(), "nats://"))
		}
		c.kinds = append(c.kinds, injLatency)
	} else {
		c.kinds = append(c.kinds, injNATSLoss, injLeader)
	}
	switch cpu, err := newCPUCap(); {
	case err == nil:
		c.cpu = cpu
		t.Cleanup(cpu.close)
		c.kinds = append(c.kinds, injStarve, injStarveLease)
	case os.Getenv("CI") == "true":
		t.Fatalf("CPU starvation needs a cgroup cpu controller this test can write (run as root): %v", err)
	default:
		t.Logf("no CPU starvation in this run: %v (run as root, with a cgroup cpu controller)", err)
	}
	for i, name := range []string{"node-a", "node-b"} {
		role := "backup"
		if i == 0 {
			role = "primary"
		}
		if _, err := c.start(ctx, name, role); err != nil {
			t.Fatal(err)
		}
	}
	waitOwner(t, l, "node-a")
	return c
}

// start starts a node through its proxy, env added to its environment.
func (c *chaos) start(ctx context.Context, name, role string, env ...string) (*deploy.Process, error) {
	var extra []string
	if p := c.proxies[name]; p != nil {
		extra = []string{"-nats", p.URL()} // the last -nats wins
	}
	return c.l.StartNodeEnv(ctx, name, role, env, extra...)
}

// record adds an injury to the history.
func (c *chaos) record(in injury) {
	in.End = time.Now()
	c.mu.Lock()
	c.injuries = append(c.injuries, in)
	c.mu.Unlock()
}

// roles returns the primary the gateways route to and the other node.
func (c *chaos) roles(ctx context.Context) (owner, other string, err error) {
	err = waitFor(ctx, func() bool {
		st, err := status(c.l)
		if err != nil || (st.Owner != "node-a" && st.Owner != "node-b") {
			return false
		}
		owner = st.Owner
		return true
	})
	other = "node-a"
	if owner == "node-a" {
		other = "node-b"
	}
	return owner, other, err
}

// whole waits until a primary serves and the other node is a ready backup.
func (c *chaos) whole(ctx context.Context) error {
	return waitFor(ctx, func() bool {
		st, err := status(c.l)
		if err != nil || st.Owner == "" {
			return false
		}
		b := "node-a"
		if st.Owner == "node-a" {
			b = "node-b"
		}
		return nodeReady(c.l, st.Owner, "primary") && nodeReady(c.l, b, "backup")
	})
}

// injure applies one injury, chosen at random from those this run can do,
// and reports whether the system was left whole (false: the next injury
// follows at once, back to back).
func (c *chaos) injure(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	owner, other, err := c.roles(ctx)
	if err != nil {
		return "status", fmt.Errorf("no primary: %w", err)
	}
	kind := c.kinds[rand.IntN(len(c.kinds))]
	in := injury{Kind: kind, Node: owner, Start: time.Now()}
	before, _ := status(c.l)
	defer func() {
		if after, err := status(c.l); err == nil {
			in.Epochs = [2]uint64{before.Epoch, after.Epoch}
		}
		c.record(in)
	}()
	switch kind {
	case injKill:
		c.l.Nodes[owner].Kill()
		if err := c.waitOwner(ctx, other); err != nil {
			return kind, fmt.Errorf("no new primary after killing %s: %w", owner, err)
		}
		if _, err := c.start(ctx, owner, "backup"); err != nil {
			return kind, err
		}
		if rand.IntN(2) == 0 {
			// Back to back: the next injury may come within a second of
			// the restarted backup's catch-up.
			in.Detail = "back to back"
			return kind, nil
		}
	case injPause:
		c.l.Nodes[owner].Pause()
		if err := c.waitOwner(ctx, other); err != nil {
			c.l.Nodes[owner].Resume()
			return kind, fmt.Errorf("no new primary while %s was paused: %w", owner, err)
		}
		c.l.Nodes[owner].Resume()
	case injNATSRestart, injNATSLoss:
		i := rand.IntN(len(c.nc.Servers))
		in.Node, in.Detail = "", "nats"+strconv.Itoa(i+1)
		c.nc.Servers[i].Kill()
		if kind == injNATSLoss {
			time.Sleep(time.Duration(1+rand.IntN(3)) * time.Second) // the cluster runs one server short
		}
		if err := c.nc.Start(ctx, i); err != nil {
			return kind, err
		}
	case injLeader:
		c.l.Nodes[owner].Kill()
		in.Detail = c.stepDown(ctx)
		if err := c.waitOwner(ctx, other); err != nil {
			return kind, fmt.Errorf("no new primary after killing %s and leader stepdowns: %w", owner, err)
		}
		if _, err := c.start(ctx, owner, "backup"); err != nil {
			return kind, err
		}
	case injInFlight, injDraining, injStopPromote:
		if err := c.aimed(ctx, kind, owner, other, &in); err != nil {
			return kind, err
		}
	case injLatency:
		d := time.Duration(50+rand.IntN(451)) * time.Millisecond
		to, from := d, d
		switch rand.IntN(3) {
		case 0:
			to, in.Detail = 0, fmt.Sprintf("%v from NATS", d)
		case 1:
			from, in.Detail = 0, fmt.Sprintf("%v to NATS", d)
		default:
			in.Detail = fmt.Sprintf("%v both ways", d)
		}
		c.proxies[owner].Delay(to, from)
		time.Sleep(time.Duration(1000+rand.IntN(2001)) * time.Millisecond)
		c.proxies[owner].Delay(0, 0)
	case injStarve, injStarveLease:
		d := time.Duration(500+rand.IntN(1501)) * time.Millisecond
		if kind == injStarveLease {
			d = time.Duration(250+rand.IntN(201)) * time.Millisecond
		}
		in.Detail = fmt.Sprintf("0.1%% CPU for %v", d)
		if err := c.cpu.starve(c.l.Nodes[owner].PID(), d); err != nil {
			return kind, err
		}
	case injGatewayReset:
		i := rand.IntN(c.l.GatewayCount())
		in.Node, in.Detail = "", fmt.Sprintf("gateway %d", i+1)
		if _, err := c.l.RestartGateway(ctx, i); err != nil {
			return kind, err
		}
	}
	return kind, c.whole(ctx)
}

// aimed arms the backup's fault point, kills the primary, restarts it at
// once, and waits for the armed node to fire and for the restarted one to
// take over.
func (c *chaos) aimed(ctx context.Context, kind, owner, other string, in *injury) error {
	var fault string
	switch kind {
	case injInFlight:
		point := []string{"before-publish", "after-publish"}[rand.IntN(2)]
		fault = fmt.Sprintf("%s:%d", point, 1+rand.IntN(100))
	case injDraining:
		fault = "drained:1"
	case injStopPromote:
		fault = []string{"drained:1:stop", "promote:1:stop"}[rand.IntN(2)]
	}
	in.Node, in.Detail = other, fault
	if err := c.l.Nodes[other].Stop(15 * time.Second); err != nil {
		return err
	}
	armed, err := c.start(ctx, other, "backup", "UNDERSTUDY_FAULT="+fault)
	if err != nil {
		return err
	}
	c.l.Nodes[owner].Kill()
	if _, err := c.start(ctx, owner, "backup"); err != nil {
		return err
	}
	fired := func() bool {
		done, _ := armed.Exited()
		return done || armed.Stopped()
	}
	// A fault that does not fire (the armed node lost the race, or had not
	// published n times) leaves it serving: it is then killed as a
	// primary would be.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = waitFor(wctx, fired)
	cancel()
	if err != nil {
		in.Detail += " (did not fire: killed)"
		armed.Kill()
	}
	if armed.Stopped() {
		if err := c.waitOwner(ctx, owner); err != nil {
			armed.Resume()
			return fmt.Errorf("%s stopped at %s: no new primary: %w", other, fault, err)
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
		armed.Resume() // it must learn it lost the group, and never answer
		return nil
	}
	if err := c.waitOwner(ctx, owner); err != nil {
		return fmt.Errorf("%s died at %s: no new primary: %w", other, fault, err)
	}
	_, err = c.start(ctx, other, "backup")
	return err
}

// waitOwner waits until the gateways route to node.
func (c *chaos) waitOwner(ctx context.Context, node string) error {
	return waitFor(ctx, func() bool { st, err := status(c.l); return err == nil && st.Owner == node })
}

// stepDown asks the session stream's and the groups bucket's leaders to
// step down (a new leader is elected while the backup claims), and says
// which did.
func (c *chaos) stepDown(ctx context.Context) string {
	nconn, err := nats.Connect(c.nc.URL())
	if err != nil {
		return "no stepdown: " + err.Error()
	}
	defer nconn.Close()
	var subj broker.Subjects
	var done []string
	for _, stream := range []string{subj.StreamName(), "KV_" + subj.GroupsBucket()} {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := nconn.RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil)
		cancel()
		if err == nil {
			done = append(done, stream)
		}
	}
	return "stepdown " + strings.Join(done, ",")
}

// cpuCap starves a process of CPU: moved into a cgroup whose quota is
// 0.1% of one CPU, the kernel's scheduler runs it 1 ms in every second
// (the smallest quota; a 100 ms period would let a renewal through).
type cpuCap struct {
	dir, root string
}

func newCPUCap() (*cpuCap, error) {
	root := "/sys/fs/cgroup/cpu" // cgroup v1's cpu controller
	if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		return nil, errors.New("no cgroup v1 cpu controller at " + root)
	}
	dir := filepath.Join(root, fmt.Sprintf("understudy-e2e-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	c := &cpuCap{dir: dir, root: root}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("1000000"), 0o644); err != nil {
		c.close()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("1000"), 0o644); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// starve caps pid's CPU for d, then gives it back.
func (c *cpuCap) starve(pid int, d time.Duration) error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("starve %d: %w", pid, err)
	}
	time.Sleep(d)
	err := os.WriteFile(filepath.Join(c.root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
	if err != nil && !errors.Is(err, syscall.ESRCH) { // gone meanwhile
		return fmt.Errorf("feed %d again: %w", pid, err)
	}
	return nil
}

func (c *cpuCap) close() { os.Remove(c.dir) }
