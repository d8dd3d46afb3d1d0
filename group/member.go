package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/group/protocol"
	"understudy/snapshot"
)

// Role is a member's part in the group.
type Role = protocol.Role

// Roles.
const (
	Backup  = protocol.Backup
	Primary = protocol.Primary
)

// Promotion describes a claim this node won.
type Promotion = protocol.Promotion

// Hooks connect a member to the node around it. All are optional. They
// run one at a time, in order, on a goroutine of the member's own, never
// on the goroutine that watches the group: a slow hook delays no renewal,
// no claim and no lease decision.
type Hooks struct {
	// Drain waits until this node's copy of the stream holds everything
	// up to stream sequence seq. Nil for a cold standby, which holds no
	// copy. (Drain runs beside the other hooks, bounded by the failover
	// timeout.)
	Drain func(ctx context.Context, seq uint64) error
	// Promote is called once this node has claimed the group, before it
	// answers the failover signal; it returns how many sessions the node
	// took over. The node serves as primary once it returns.
	Promote func(ctx context.Context, p Promotion) (sessions int, err error)
	// Demote is called when the node stops being the primary: it lost the
	// group (ErrLostGroup) or released it (nil). Requests in flight fail
	// the answer rule already; Demote must not wait for them.
	Demote func(err error)
	// Claims is called when the group's claims change (a failover), so
	// held snapshots can be judged again by the fence rule. Fence reflects
	// the new claims before Claims is called.
	Claims func(snapshot.Claims)
	// Progress reports, for heartbeats, how far behind the node is, how
	// many sessions it holds, and whether it has caught up.
	Progress func() (lag uint64, sessions int, caughtUp bool)
	// Renewed, if set, is told of every attempt to renew the lease: how
	// long it took and whether it landed. It must not block.
	Renewed func(took time.Duration, landed bool)
}

// Member is one node's membership of a group: the driver of the protocol
// core (package protocol). It feeds the core what happens (the group
// entry's revisions, the outcomes of writes and reads, signals, the
// connection's state, the passing of time) and carries out what the core
// decides. Every decision is the core's; the Member only does I/O.
type Member struct {
	nc     *nats.Conn
	kv     jetstream.KeyValue
	stream jetstream.Stream
	cfg    Config
	hooks  Hooks
	log    *slog.Logger
	mon    *Monitor
	origin time.Time // the monotonic clock's origin for the core

	mu      sync.Mutex
	core    *protocol.Member
	watched []*nats.Conn // connections whose loss counts as the member's (see Watch)
	conns   []*nats.Conn // the member's own, then the watched ones; set by Start
	told    []uint64     // per connection: the reconnect count the core has been told about
	down    []bool       // per connection: lost, as its handlers said
	signals map[protocol.SignalID]*nats.Msg
	ops     map[protocol.OpID]chan error
	nextID  uint64

	claims     atomic.Pointer[snapshot.Claims]
	standalone atomic.Bool // the server says it is standalone (FastPathAuto)

	runner *runner // runs hooks in order
	wake   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
}

// New returns a member. It does no I/O: Start begins watching.
func New(nc *nats.Conn, kv jetstream.KeyValue, stream jetstream.Stream, cfg Config, hooks Hooks) *Member {
	cfg = cfg.withDefaults()
	m := &Member{
		nc: nc, kv: kv, stream: stream, cfg: cfg, hooks: hooks,
		log:     cfg.Logger.With("group", cfg.Group, "node", cfg.Node),
		origin:  time.Now(),
		core:    protocol.New(cfg.protocol()),
		signals: map[protocol.SignalID]*nats.Msg{},
		ops:     map[protocol.OpID]chan error{},
		wake:    make(chan struct{}, 1),
	}
	m.mon = NewMonitor(nc, kv, MonitorConfig{Subjects: cfg.Subjects, Group: cfg.Group, Logger: cfg.Logger, OnEntry: m.observe, OnLoaded: m.loaded})
	m.claims.Store(&snapshot.Claims{})
	return m
}

// now reads the member's monotonic clock as the core counts it.
func (m *Member) now() protocol.Mono { return protocol.Mono(time.Since(m.origin)) }

// Start watches the group entry, answers on the node's control subject and
// the failover subject, and publishes heartbeats. It returns once the
// current entry is known.
func (m *Member) Start(ctx context.Context) error {
	if err := m.cfg.Validate(); err != nil {
		return err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.runner = newRunner(&m.wg)
	nodeSubj, err := m.cfg.Subjects.NodeSubject(m.cfg.Node)
	if err != nil {
		return err
	}
	m.conns = append([]*nats.Conn{m.nc}, m.watched...)
	// The node's control subject is answered on every connection of the
	// member: "no responders" (the fast path's proof of a crash) must mean
	// that none is left, above all not the one that publishes snapshots.
	for _, nc := range m.conns {
		sub, err := nc.Subscribe(nodeSubj, m.onPing)
		if err != nil {
			return fmt.Errorf("group %s: subscribe %s: %w", m.cfg.Group, nodeSubj, err)
		}
		m.subs = append(m.subs, sub)
	}
	sub, err := m.nc.Subscribe(m.cfg.Subjects.FailoverSubject(), m.onSignal)
	if err != nil {
		return fmt.Errorf("group %s: subscribe failover: %w", m.cfg.Group, err)
	}
	m.subs = append(m.subs, sub)
	m.told = make([]uint64, len(m.conns))
	for i, nc := range m.conns {
		if err := nc.Flush(); err != nil {
			return fmt.Errorf("group %s: %w", m.cfg.Group, err)
		}
		m.told[i] = nc.Stats().Reconnects
	}
	m.chainConnHandlers()
	m.checkStandalone(ctx)

	m.wg.Add(1)
	go m.clock()
	if err := m.mon.Start(ctx); err != nil {
		return err
	}
	m.wg.Add(1)
	go m.heartbeatLoop()
	return nil
}

// Monitor returns the monitor the member watches its group with.
func (m *Member) Monitor() *Monitor { return m.mon }

// Close stops the member and waits for its goroutines. A primary stops
// renewing; use Release first to hand over gracefully.
func (m *Member) Close(ctx context.Context) error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	for _, s := range m.subs {
		s.Unsubscribe()
	}
	m.mon.Close()
	m.runner.close()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("group %s: close: %w", m.cfg.Group, ctx.Err())
	}
}

// do runs one event through the core and carries out its actions.
func (m *Member) do(event func(now protocol.Mono) []protocol.Action) {
	m.mu.Lock()
	acts := event(m.now())
	if c := m.core.Claims(); !slices.Equal(c, *m.claims.Load()) {
		// The fence follows the core before any hook hears of the change.
		m.claims.Store(&c)
	}
	m.mu.Unlock()
	m.dispatch(acts)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// clock ticks the core when it asks to be woken.
func (m *Member) clock() {
	defer m.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		m.mu.Lock()
		next, ok := m.core.Next()
		now := m.now()
		m.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = max(next.Sub(now), 0)
		}
		t.Reset(wait)
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
			m.do(m.core.Tick)
		}
	}
}

// dispatch carries out the core's actions. Nothing here blocks: I/O runs
// on goroutines the member waits for at Close, hooks on the runner.
func (m *Member) dispatch(acts []protocol.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case protocol.Write:
			m.goIO(func() {
				r := m.attempt(a)
				m.do(func(now protocol.Mono) []protocol.Action { return m.core.WriteDone(now, r) })
			})
		case protocol.Ping:
			m.goIO(func() {
				r := m.ping(a.Node)
				m.do(func(now protocol.Mono) []protocol.Action { return m.core.PingDone(now, a.Takeover, r) })
			})
		case protocol.ReadLastSeq:
			m.goIO(func() {
				seq, err := m.lastSeq()
				m.do(func(now protocol.Mono) []protocol.Action { return m.core.LastSeqDone(now, a.Takeover, seq, err) })
			})
		case protocol.Drain:
			m.goIO(func() {
				err := m.drain(a.Seq)
				m.do(func(now protocol.Mono) []protocol.Action { return m.core.DrainDone(now, a.Takeover, err) })
			})
		case protocol.Promote:
			m.runner.run(func() {
				sessions, err := 0, error(nil)
				if m.hooks.Promote != nil {
					sessions, err = m.hooks.Promote(m.ctx, a.Promotion)
				}
				m.do(func(now protocol.Mono) []protocol.Action { return m.core.PromoteDone(now, sessions, err) })
			})
		case protocol.Demote:
			if a.Err != nil {
				m.log.Error("no longer primary", "err", a.Err)
			} else {
				m.log.Info("handed the group over")
			}
			if m.hooks.Demote != nil {
				m.runner.run(func() { m.hooks.Demote(a.Err) })
			}
		case protocol.ClaimsChanged:
			if m.hooks.Claims != nil {
				m.runner.run(func() { m.hooks.Claims(a.Claims) })
			}
		case protocol.Reply:
			m.reply(a)
		case protocol.Done:
			m.mu.Lock()
			ch := m.ops[a.Op]
			delete(m.ops, a.Op)
			m.mu.Unlock()
			if ch != nil {
				ch <- a.Err
			}
		}
	}
}

// goIO runs f on a goroutine that Close waits for.
func (m *Member) goIO(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if m.ctx.Err() == nil {
			f()
		}
	}()
}

// observe takes a revision of the group entry from the monitor's watch.
func (m *Member) observe(e Entry, exists bool) {
	m.do(func(now protocol.Mono) []protocol.Action { return m.core.Observe(now, e, exists) })
}

func (m *Member) loaded() { m.do(m.core.Load) }

// Role returns the member's role.
func (m *Member) Role() Role {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.Role()
}

// Entry returns the newest group entry known, and whether one exists.
func (m *Member) Entry() (Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.Entry()
}

// Epoch returns the epoch this node publishes with as primary, or 0.
func (m *Member) Epoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.Epoch()
}

// Valid reports whether this node's lease is valid now: it is the primary,
// its newest landed write was first sent less than a lease ago by its own
// monotonic clock, a write sent since its last disconnect or reconnect has
// landed, and it is not handing over.
func (m *Member) Valid() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connectedLocked() && m.core.Valid(m.now())
}

// MayAnswer is the answer rule: an interaction applied at epoch may be
// answered only while the lease is valid and epoch is still the current
// epoch.
func (m *Member) MayAnswer(epoch uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connectedLocked() && m.core.MayAnswer(m.now(), epoch)
}

// connectedLocked reports whether every connection of the member is up
// and the core knows of every reconnect: the reconnect counts are read
// here rather than trusted to the reconnect callbacks, which run later. (A
// data connection that reconnected unseen could carry a publish made
// after a claim the core has not learned of.)
func (m *Member) connectedLocked() bool {
	for i, nc := range m.conns {
		if !nc.IsConnected() || nc.Stats().Reconnects != m.told[i] {
			return false
		}
	}
	return len(m.conns) > 0
}

// LeaseAge returns how long ago the group entry last changed, as seen here.
func (m *Member) LeaseAge() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, have := m.core.Entry(); !have {
		return 0
	}
	return m.now().Sub(m.core.Seen())
}

// Fence returns the group's claims as a snapshot.Fence that follows every
// failover.
func (m *Member) Fence() snapshot.Fence { return fenceView{m} }

type fenceView struct{ m *Member }

func (f fenceView) Fenced(epoch, streamSeq uint64) bool {
	return f.m.claims.Load().Fenced(epoch, streamSeq)
}

// Claim makes this node the primary if the group is free, released, or its
// owner's lease has lapsed (it waits out a lease to know). It returns
// ErrHeld when another live node holds the group: the node starts as a
// backup. A node started as primary calls it once it has caught up.
func (m *Member) Claim(ctx context.Context) error {
	if err := m.wait(ctx, m.core.Claim); err != nil {
		return fmt.Errorf("group %s: claim: %w", m.cfg.Group, err)
	}
	e, _ := m.Entry()
	m.log.Info("claimed the group", "epoch", e.Epoch)
	return nil
}

// Release hands the group over gracefully: the lease stops being valid at
// once, the entry is marked released, and backups claim without waiting
// out the lease. The caller has drained in-flight requests first.
func (m *Member) Release(ctx context.Context) error {
	if err := m.wait(ctx, m.core.Release); err != nil {
		return fmt.Errorf("group %s: release: %w", m.cfg.Group, err)
	}
	return nil
}

// wait starts an operation of the core and waits for its Done, or gives
// it up when ctx ends.
func (m *Member) wait(ctx context.Context, start func(now protocol.Mono, op protocol.OpID) []protocol.Action) error {
	ch := make(chan error, 1)
	m.mu.Lock()
	m.nextID++
	op := protocol.OpID(m.nextID)
	m.ops[op] = ch
	m.mu.Unlock()
	m.do(func(now protocol.Mono) []protocol.Action { return start(now, op) })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		m.do(func(now protocol.Mono) []protocol.Action { return m.core.Cancel(now, op) })
		// Cancel's Done, or the outcome that came just before it.
		if err := <-ch; !errors.Is(err, protocol.ErrCanceled) {
			return err
		}
		return ctx.Err()
	}
}
