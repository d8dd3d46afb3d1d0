package group

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/group/protocol"
)

var ctx = context.Background()

// cluster is a group's NATS side: a server (or cluster), the stream and
// the bucket, and the members started on it.
type cluster struct {
	t       *testing.T
	connect func(t testing.TB, opts ...brokertest.ClientOption) *nats.Conn
	lease   time.Duration
	fast    FastPath
	apps    map[string][]string // what each member announces it can materialize

	mu         sync.Mutex
	promotions atomic.Int32
	demotions  map[string][]error
	members    []*Member
	violations []string
}

func newCluster(t *testing.T, srv *brokertest.Server) *cluster {
	// As the gateway does for its embedded server: the fast path is
	// allowed on a server that says it is standalone.
	srv.AnswerStandalone(t, broker.Subjects{})
	return newClusterOn(t, srv.Connect, 1)
}

func newClusterOn(t *testing.T, connect func(testing.TB, ...brokertest.ClientOption) *nats.Conn, replicas int) *cluster {
	c := &cluster{t: t, connect: connect, lease: 300 * time.Millisecond, demotions: map[string][]error{}}
	nc := connect(t)
	js, _ := jetstream.New(nc)
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Replicas: replicas, Logger: brokertest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.EnsureBucket(ctx, js, broker.BucketConfig{Replicas: replicas, Logger: brokertest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// member starts a member named node with its own connection.
func (c *cluster) member(node string) *Member { return c.memberWatching(node, nil) }

// memberWatching starts a member named node with its own connection, which
// also takes the loss of watched as its own (see Member.Watch).
func (c *cluster) memberWatching(node string, watched *nats.Conn) *Member {
	t := c.t
	nc := c.connect(t, brokertest.NoReconnectBuffer())
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	var m *Member
	m = New(nc, kv, stream, Config{Node: node, Address: "http://" + node, Lease: c.lease, FastPath: c.fast, Heartbeat: 50 * time.Millisecond, Apps: c.apps[node], Logger: brokertest.Logger(t)}, Hooks{
		Promote: func(context.Context, Promotion) (int, error) {
			c.promotions.Add(1)
			// The safety property: when a node becomes primary, no other
			// node may still consider its lease valid.
			c.mu.Lock()
			for _, o := range c.members {
				if o != m && o.Valid() {
					c.violations = append(c.violations, o.cfg.Node+" valid while "+node+" was promoted")
				}
			}
			c.mu.Unlock()
			return 7, nil
		},
		Demote: func(err error) {
			c.mu.Lock()
			c.demotions[node] = append(c.demotions[node], err)
			c.mu.Unlock()
		},
	})
	if watched != nil {
		m.Watch(watched)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	t.Cleanup(func() {
		m.Close(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.violations) > 0 {
			t.Errorf("two primaries: %v", c.violations)
			c.violations = nil
		}
	})
	return m
}

func (c *cluster) signal(failed, reason string) (FailoverReply, error) {
	nc := c.connect(c.t)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return Signal(sctx, nc, broker.Subjects{}, FailoverRequest{Failed: failed, Reason: reason})
}

func primary(t *testing.T, m *Member) {
	t.Helper()
	if err := m.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Role() != Primary || !m.Valid() {
		t.Fatalf("%s: role %s valid %v", m.cfg.Node, m.Role(), m.Valid())
	}
}

func TestClaimAndRenew(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	a := c.member("a")
	primary(t, a)
	e, err := a.Monitor().WaitFor(ctx, func(e Entry, ok bool) bool { return ok && e.Epoch == 1 })
	if err != nil || e.Owner != "a" || e.Address != "http://a" {
		t.Fatalf("entry %+v %v", e, err)
	}
	first := e.Revision
	brokertest.WaitFor(t, 10*time.Second, "renewals", func() bool {
		e, _ := a.Entry()
		return e.Revision >= first+3 && e.Renewals >= 3
	})
	if !a.Valid() {
		t.Fatal("a renewing primary is not valid")
	}
	if c.promotions.Load() != 1 {
		t.Errorf("%d promotions", c.promotions.Load())
	}
}

func TestSecondPrimaryStartsAsBackup(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	primary(t, c.member("a"))
	b := c.member("b")
	err := b.Claim(ctx)
	if !errors.Is(err, ErrHeld) || b.Role() != Backup || b.Valid() {
		t.Fatalf("got %v, role %s", err, b.Role())
	}
}

// crash stops a member the way kill -9 does: no release, no more renewals,
// its connection gone.
func crash(m *Member) {
	m.Close(ctx)
	m.nc.Close()
}

func TestBackupsRaceForOneSignal(t *testing.T) {
	for _, reason := range []string{ReasonLease, ReasonUnreachable} {
		for _, n := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/%d backups", reason, n), func(t *testing.T) {
				c := newCluster(t, brokertest.Start(t))
				a := c.member("a")
				primary(t, a)
				var backups []*Member
				for i := range n {
					backups = append(backups, c.member(fmt.Sprintf("b%d", i)))
				}
				crash(a)
				rep, err := c.signal("a", reason)
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Promoted || rep.Epoch != 2 || rep.Sessions != 7 {
					t.Fatalf("reply %+v", rep)
				}
				if rep.FastPath != (reason == ReasonUnreachable) {
					t.Errorf("fast path %v for reason %s", rep.FastPath, reason)
				}
				winners := 0
				for _, b := range backups {
					if b.Role() == Primary {
						winners++
						if b.cfg.Node != rep.Node {
							t.Errorf("%s is primary, the reply names %s", b.cfg.Node, rep.Node)
						}
					}
				}
				if winners != 1 || c.promotions.Load() != 2 {
					t.Fatalf("%d primaries, %d promotions", winners, c.promotions.Load())
				}
				// A late signal is answered with the owner.
				again, err := c.signal("a", reason)
				if err != nil || again.Node != rep.Node || again.Promoted || again.Epoch != 2 {
					t.Fatalf("late signal: %+v %v", again, err)
				}
			})
		}
	}
}

func TestTwoSignalsAtOnce(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	a := c.member("a")
	primary(t, a)
	c.member("b")
	c.member("c")
	crash(a)
	var wg sync.WaitGroup
	replies := make([]FailoverReply, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = c.signal("a", ReasonUnreachable)
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || replies[i].Epoch != 2 || replies[i].Node != replies[0].Node {
			t.Fatalf("reply %d: %+v %v", i, replies[i], errs[i])
		}
	}
	if c.promotions.Load() != 2 {
		t.Fatalf("%d promotions, want the first claim and one failover", c.promotions.Load())
	}
}

func TestFastPathRefusedWhileThePrimaryLives(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	a := c.member("a")
	primary(t, a)
	b := c.member("b")
	// The gateway thinks a is unreachable, but a answers on NATS and keeps
	// renewing: b waits out the lease, sees renewals, and reports a.
	rep, err := c.signal("a", ReasonUnreachable)
	if err != nil || rep.Node != "a" || rep.Promoted || b.Role() != Backup || !a.Valid() {
		t.Fatalf("reply %+v %v; b %s", rep, err, b.Role())
	}
}

// TestFastPathNeedsEveryConnectionGone: a primary whose lease has a
// connection of its own still publishes snapshots on its data connection
// when the lease's connection is gone. "No responders" must then not pass
// for a crash: the backup waits out the lease, so nothing the primary
// publishes meanwhile lands after the fence of a claim made at once.
func TestFastPathNeedsEveryConnectionGone(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	data := c.connect(t, brokertest.NoReconnectBuffer())
	a := c.memberWatching("a", data)
	primary(t, a)
	c.member("b")
	a.nc.Close() // the lease's connection alone: data lives on
	rep, err := c.signal("a", ReasonUnreachable)
	if err != nil || !rep.Promoted || rep.Node != "b" {
		t.Fatalf("reply %+v %v", rep, err)
	}
	if rep.FastPath {
		t.Fatal("the fast path took the primary for crashed while its data connection was up")
	}
}

// TestDataConnectionLossEndsTheLease: the data connection counts as the
// member's own: while it is down the primary is not valid and stops
// renewing; after it reconnects the primary renews before it is valid
// again.
func TestDataConnectionLossEndsTheLease(t *testing.T) {
	srv := brokertest.Start(t)
	c := newCluster(t, srv)
	p := brokertest.NewProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
	data, err := nats.Connect(p.URL(), nats.ReconnectBufSize(-1), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(data.Close)
	a := c.memberWatching("a", data)
	primary(t, a)
	p.Refuse(true)
	p.Cut()
	brokertest.WaitFor(t, 5*time.Second, "a to notice", func() bool { return !data.IsConnected() })
	if a.Valid() {
		t.Fatal("valid while the data connection is down")
	}
	var validOnReconnect atomic.Bool
	prev := data.Opts.ReconnectedCB
	data.SetReconnectHandler(func(nc *nats.Conn) {
		validOnReconnect.Store(a.Valid())
		prev(nc)
	})
	p.Refuse(false)
	brokertest.WaitFor(t, 20*time.Second, "a to renew after the data connection is back", a.Valid)
	if validOnReconnect.Load() {
		t.Fatal("valid on the data connection's reconnect, before a renewal sent after it landed")
	}
}

func TestPausedPrimaryLosesTheGroup(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	a := c.member("a")
	primary(t, a)
	b := c.member("b")

	release := make(chan struct{})
	hook := func(node string, w protocol.Write) {
		if node == "a" && w.Kind == protocol.KindRenew {
			<-release
		}
	}
	testHookWrite.Store(&hook)
	defer testHookWrite.Store(nil)

	// Paused, a stops being valid by its own clock within a lease.
	brokertest.WaitFor(t, 5*time.Second, "a's lease to lapse", func() bool { return !a.Valid() })
	rep, err := c.signal("a", ReasonLease)
	if err != nil || !rep.Promoted || rep.Node != "b" {
		t.Fatalf("reply %+v %v", rep, err)
	}
	close(release)
	// Resumed, a's renewal meets b's claim: a learns it lost the group.
	// The Demote hook runs after the role has changed, on the member's
	// runner: wait for both.
	var errs []error
	brokertest.WaitFor(t, 5*time.Second, "a to be demoted", func() bool {
		c.mu.Lock()
		errs = c.demotions["a"]
		c.mu.Unlock()
		return a.Role() == Backup && len(errs) > 0
	})
	if len(errs) != 1 || !errors.Is(errs[0], ErrLostGroup) {
		t.Fatalf("a's demotions: %v", errs)
	}
	if a.Valid() || !b.Valid() {
		t.Fatalf("valid: a %v b %v", a.Valid(), b.Valid())
	}
	if !b.Fence().Fenced(1, rep.Epoch+1000) || b.Fence().Fenced(2, 1<<40) {
		t.Error("fence does not follow the claim")
	}
}

func TestReconnectMustRenewBeforeServing(t *testing.T) {
	srv := brokertest.Start(t)
	c := newCluster(t, srv)
	a := c.member("a")
	primary(t, a)
	var invalidAfterReconnect atomic.Bool
	srv.Stop()
	brokertest.WaitFor(t, 5*time.Second, "a to notice", func() bool { return !a.nc.IsConnected() })
	if a.Valid() {
		t.Fatal("valid while disconnected")
	}
	// Watch validity around the reconnect: right after it, before a
	// renewal has succeeded, a must not be valid.
	prev := a.nc.Opts.ReconnectedCB
	a.nc.SetReconnectHandler(func(c *nats.Conn) {
		invalidAfterReconnect.Store(!a.Valid())
		prev(c)
		if a.Valid() {
			t.Error("valid right after the reconnect, before a renewal sent after it landed")
		}
	})
	srv.Start()
	brokertest.WaitFor(t, 20*time.Second, "a to renew after the reconnect", a.Valid)
	if !invalidAfterReconnect.Load() {
		t.Fatal("a was valid on reconnect before renewing")
	}
}

func TestGracefulHandover(t *testing.T) {
	c := newCluster(t, brokertest.Start(t))
	a := c.member("a")
	primary(t, a)
	b := c.member("b")
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Valid() || a.Role() != Backup {
		t.Fatal("a still primary after release")
	}
	// b claims without a signal and without waiting out a lease.
	brokertest.WaitFor(t, 5*time.Second, "b to claim", func() bool { return b.Role() == Primary })
	e, _ := b.Entry()
	if e.Owner != "b" || e.Epoch != 2 || e.Released {
		t.Fatalf("entry %+v", e)
	}
	c.mu.Lock()
	if errs := c.demotions["a"]; len(errs) != 1 || errs[0] != nil {
		t.Errorf("a's demotions: %v", errs)
	}
	c.mu.Unlock()
	// a restarted as primary finds b renewing and stays a backup.
	a2 := c.member("a")
	if err := a2.Claim(ctx); !errors.Is(err, ErrHeld) {
		t.Fatalf("restarted a: %v", err)
	}
}

// TestClusterLosesAServerDuringPromotion: on a 3-server cluster with a
// 3-replica stream and bucket, the bucket's leader is stopped as the
// primary dies, so the backups wait out the lease and claim while the bucket
// elects a new leader. The claim is retried until it answers, and the group
// ends with exactly one owner.
func TestClusterLosesAServerDuringPromotion(t *testing.T) {
	nc := brokertest.StartCluster(t, 3)
	c := newClusterOn(t, nc.Connect, 3)
	kvStream := "KV_" + broker.Subjects{}.GroupsBucket()
	nc.WaitForStreamLeader(t, kvStream)
	a := c.member("a")
	primary(t, a)
	b, d := c.member("b"), c.member("d")
	if b.fastPathAllowed() {
		t.Fatal("fast path allowed on a cluster")
	}
	// The bucket's leader goes away with the primary: the claim meets a
	// leaderless bucket and is retried until the new leader answers.
	nc.StreamLeader(kvStream).Stop()
	crash(a)
	var rep FailoverReply
	brokertest.WaitFor(t, brokertest.LeaderTimeout, "a failover to settle", func() bool {
		var err error
		rep, err = c.signal("a", ReasonLease)
		return err == nil && rep.Epoch == 2
	})
	primaries := 0
	for _, m := range []*Member{b, d} {
		if m.Role() == Primary {
			primaries++
			if m.cfg.Node != rep.Node {
				t.Errorf("%s is primary, the reply names %s", m.cfg.Node, rep.Node)
			}
		}
	}
	if primaries != 1 || c.promotions.Load() != 2 {
		t.Fatalf("%d primaries, %d promotions", primaries, c.promotions.Load())
	}
	brokertest.WaitFor(t, brokertest.LeaderTimeout, "the winner to renew", func() bool {
		for _, m := range []*Member{b, d} {
			if m.Valid() {
				return true
			}
		}
		return false
	})
}
