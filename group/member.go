package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/snapshot"
)

// Role is a member's part in the group.
type Role int32

// Roles.
const (
	Backup Role = iota
	Primary
)

func (r Role) String() string {
	if r == Primary {
		return "primary"
	}
	return "backup"
}

// Hooks connect a member to the node around it. All are optional.
type Hooks struct {
	// Drain waits until this node's copy of the stream holds everything
	// up to stream sequence seq. Nil for a cold standby, which holds no
	// copy.
	Drain func(ctx context.Context, seq uint64) error
	// Promote is called once this node has claimed the group, before it
	// answers the failover signal; it returns how many sessions the node
	// took over. The node serves as primary once it returns.
	Promote func(ctx context.Context, p Promotion) (sessions int, err error)
	// Demote is called when the node stops being the primary: it lost the
	// group (ErrLostGroup) or released it (nil).
	Demote func(err error)
	// Claims is called when the group's claims change (a failover), so
	// held snapshots can be judged again by the fence rule.
	Claims func(snapshot.Claims)
	// Progress reports, for heartbeats, how far behind the node is, how
	// many sessions it holds, and whether it has caught up.
	Progress func() (lag uint64, sessions int, caughtUp bool)
}

// Promotion describes a claim this node won.
type Promotion struct {
	Epoch    uint64
	Fence    uint64
	Claims   snapshot.Claims
	Previous string // the owner before, "" for a new group
}

// Member is one node's membership of a group: as a backup it watches the
// primary's lease and answers failover signals; as the primary it renews
// its lease and says whether it may answer (Valid).
type Member struct {
	nc     *nats.Conn
	kv     jetstream.KeyValue
	stream jetstream.Stream
	cfg    Config
	hooks  Hooks
	log    *slog.Logger

	mon *Monitor

	mu        sync.Mutex
	role      Role
	mine      Entry     // as primary: the entry as this node last wrote it
	renewSent time.Time // as primary: when the last successful renewal was sent
	renewConn uint64    // as primary: the connection's reconnect count when it was sent
	needRenew bool      // a disconnect happened since the last renewal
	releasing bool
	lastEpoch uint64 // the epoch of the last entry observed
	stopRenew context.CancelFunc

	claims atomic.Pointer[snapshot.Claims]
	claim  sync.Mutex // one claim attempt at a time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	renewC chan struct{}
}

// New returns a member. It does no I/O: Start begins watching.
func New(nc *nats.Conn, kv jetstream.KeyValue, stream jetstream.Stream, cfg Config, hooks Hooks) *Member {
	cfg = cfg.withDefaults()
	m := &Member{
		nc: nc, kv: kv, stream: stream, cfg: cfg, hooks: hooks,
		log:    cfg.Logger.With("group", cfg.Group, "node", cfg.Node),
		renewC: make(chan struct{}, 1),
	}
	m.mon = NewMonitor(nc, kv, MonitorConfig{Subjects: cfg.Subjects, Group: cfg.Group, Logger: cfg.Logger, OnEntry: m.observe})
	m.claims.Store(&snapshot.Claims{})
	return m
}

// Start watches the group entry, answers on the node's control subject and
// the failover subject, and publishes heartbeats. It returns once the
// current entry is known.
func (m *Member) Start(ctx context.Context) error {
	if err := m.cfg.Validate(); err != nil {
		return err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	nodeSubj, err := m.cfg.Subjects.NodeSubject(m.cfg.Node)
	if err != nil {
		return err
	}
	sub, err := m.nc.Subscribe(nodeSubj, m.onPing)
	if err != nil {
		return fmt.Errorf("group %s: subscribe %s: %w", m.cfg.Group, nodeSubj, err)
	}
	m.subs = append(m.subs, sub)
	if sub, err = m.nc.Subscribe(m.cfg.Subjects.FailoverSubject(), m.onSignal); err != nil {
		return fmt.Errorf("group %s: subscribe failover: %w", m.cfg.Group, err)
	}
	m.subs = append(m.subs, sub)
	if err := m.nc.Flush(); err != nil {
		return fmt.Errorf("group %s: %w", m.cfg.Group, err)
	}
	m.chainConnHandlers()

	if err := m.mon.Start(ctx); err != nil {
		return err
	}
	m.wg.Add(1)
	go m.heartbeatLoop()
	return nil
}

// Monitor returns the monitor the member watches its group with.
func (m *Member) Monitor() *Monitor { return m.mon }

// chainConnHandlers makes a disconnect or reconnect invalidate the lease
// until a renewal succeeds again, keeping whatever handlers were set.
func (m *Member) chainConnHandlers() {
	prevDisc, prevRec := m.nc.Opts.DisconnectedErrCB, m.nc.Opts.ReconnectedCB
	m.nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		if prevDisc != nil {
			prevDisc(c, err)
		}
		m.connectionLost()
	})
	m.nc.SetReconnectHandler(func(c *nats.Conn) {
		if prevRec != nil {
			prevRec(c)
		}
		m.connectionLost()
		m.kick()
	})
}

// connectionLost invalidates the lease until the next renewal: anything
// sent before the disconnect may have been lost, and the group may have
// changed hands meanwhile.
func (m *Member) connectionLost() {
	m.mu.Lock()
	m.needRenew = true
	m.mu.Unlock()
}

func (m *Member) kick() {
	select {
	case m.renewC <- struct{}{}:
	default:
	}
}

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
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("group %s: close: %w", m.cfg.Group, ctx.Err())
	}
}

// Role returns the member's role.
func (m *Member) Role() Role {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.role
}

// Entry returns the newest group entry observed, and whether one exists.
func (m *Member) Entry() (Entry, bool) { return m.mon.Owner() }

// Epoch returns the epoch this node publishes with as primary, or 0.
func (m *Member) Epoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.role != Primary {
		return 0
	}
	return m.mine.Epoch
}

// Valid reports whether this node may answer an interaction now: it is the
// primary, its lease has not lapsed by its own monotonic clock counted from
// when it sent its last successful renewal, no disconnect happened since
// that renewal, and it is not handing over.
func (m *Member) Valid() bool {
	// The reconnect count is read here rather than trusted to the
	// reconnect callback, which runs later: between a reconnect and its
	// callback the lease would otherwise look valid.
	conn, connected := m.nc.Stats().Reconnects, m.nc.IsConnected()
	m.mu.Lock()
	defer m.mu.Unlock()
	return connected && m.role == Primary && !m.needRenew && !m.releasing && conn == m.renewConn &&
		time.Since(m.renewSent) < m.cfg.Lease
}

// LeaseAge returns how long ago the last renewal was seen (by this node).
func (m *Member) LeaseAge() time.Duration {
	_, have, seen, _, _ := m.mon.state()
	if !have {
		return 0
	}
	return time.Since(seen)
}

// Fence returns the group's claims as a snapshot.Fence that follows every
// failover.
func (m *Member) Fence() snapshot.Fence { return fenceView{m} }

type fenceView struct{ m *Member }

func (f fenceView) Fenced(epoch, streamSeq uint64) bool {
	return f.m.claims.Load().Fenced(epoch, streamSeq)
}

// observe reacts to a new revision of the group entry.
func (m *Member) observe(e Entry, exists bool) {
	m.mu.Lock()
	lost := m.role == Primary && !m.releasing && (!exists || e.Owner != m.cfg.Node || e.Epoch != m.mine.Epoch)
	newClaims := exists && e.Epoch != m.lastEpoch
	m.lastEpoch = e.Epoch
	released := exists && e.Released && e.Owner != m.cfg.Node && m.role == Backup && m.ctx != nil
	if newClaims {
		c := append(snapshot.Claims{}, e.Claims...)
		m.claims.Store(&c)
	}
	m.mu.Unlock()

	if newClaims && m.hooks.Claims != nil {
		m.hooks.Claims(e.Claims)
	}
	if lost {
		m.demote(fmt.Errorf("%w: epoch %d owned by %s", ErrLostGroup, e.Epoch, e.Owner))
	}
	if released {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			rep := m.failover(m.ctx, FailoverRequest{Group: m.cfg.Group, Failed: e.Owner, Reason: "released"})
			if rep.Promoted {
				m.log.Info("took over a released group", "epoch", rep.Epoch, "took", rep.Took)
			}
		}()
	}
}

// onPing answers on the node's control subject: it proves this node's
// connection is alive, which the fast path relies on.
func (m *Member) onPing(msg *nats.Msg) {
	m.mu.Lock()
	p := ping{Node: m.cfg.Node, Role: m.role.String(), Epoch: m.mine.Epoch}
	m.mu.Unlock()
	data, _ := json.Marshal(p)
	msg.Respond(data)
}

// onSignal handles a failover signal in its own goroutine.
func (m *Member) onSignal(msg *nats.Msg) {
	var req FailoverRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		m.log.Warn("unreadable failover signal", "err", err)
		return
	}
	if req.Group == "" {
		req.Group = DefaultGroup
	}
	if req.Group != m.cfg.Group {
		return
	}
	if m.Role() == Primary {
		if req.Failed == m.cfg.Node && !m.Valid() {
			// Unsure of its own lease, the primary does not vote on its own
			// failure: backups judge it.
			return
		}
		// The owner answers for itself: with a valid lease no backup can
		// claim, and a late signal about a node it replaced must not wait
		// for backups that may not have seen its claim yet.
		m.mu.Lock()
		data, _ := json.Marshal(m.ownerReply(m.mine))
		m.mu.Unlock()
		msg.Respond(data)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		// Bounded: a drain stuck behind a NATS leader election must not
		// leave the signal unanswered; the gateway signals again.
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.FailoverTimeout)
		defer cancel()
		m.log.Info("failover signal", "failed", req.Failed, "reason", req.Reason)
		rep := m.failover(ctx, req)
		if rep.Error != "" {
			m.log.Warn("failover attempt failed", "failed", req.Failed, "err", rep.Error)
		}
		if rep == (FailoverReply{}) {
			return // lost the race: the winner answers
		}
		data, _ := json.Marshal(rep)
		if err := msg.Respond(data); err != nil {
			m.log.Debug("failover reply", "err", err)
		}
	}()
}

func (m *Member) ownerReply(e Entry) FailoverReply {
	return FailoverReply{Node: e.Owner, Address: e.Address, Epoch: e.Epoch}
}

// failover runs one failover attempt. It returns the reply to send, or the
// zero reply when another backup won the claim (the winner answers).
func (m *Member) failover(ctx context.Context, req FailoverRequest) FailoverReply {
	start := time.Now()
	m.claim.Lock()
	defer m.claim.Unlock()

	e, have := m.mon.Owner()
	if m.Role() == Primary {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.ownerReply(m.mine) // the monitor may not show our claim yet
	}
	switch {
	case !have:
		return FailoverReply{Error: fmt.Sprintf("group %s has no entry: no primary to replace", m.cfg.Group)}
	case e.Owner != req.Failed:
		return m.ownerReply(e) // settled already: a late or duplicate signal
	}

	// Wait: the fast path, or out the lease.
	fast := false
	if req.Reason == ReasonUnreachable && m.fastPathAllowed() {
		fast = m.gone(ctx, req.Failed)
	}
	rev := e.Revision
	if !fast && !e.Released {
		var out lapse
		rev, out = m.waitLapse(ctx, e)
		switch out {
		case renewed:
			cur, _ := m.Entry()
			return m.ownerReply(cur) // the owner lives
		case claimed, canceled:
			return FailoverReply{} // another node took over: it answers
		}
	}
	wait := time.Since(start)
	promoted, rep := m.takeOver(ctx, e, rev, req.Failed)
	if !promoted {
		return rep
	}
	rep.Wait, rep.FastPath = wait, fast
	rep.Took = time.Since(start)
	m.log.Info("promoted", "epoch", rep.Epoch, "previous", req.Failed, "reason", req.Reason, "fast_path", fast,
		"sessions", rep.Sessions, "took", rep.Took, "wait", rep.Wait, "drain", rep.Drain, "claim", rep.Claim)
	return rep
}

func (m *Member) fastPathAllowed() bool {
	switch m.cfg.FastPath {
	case FastPathOn:
		return true
	case FastPathOff:
		return false
	}
	return m.nc.ConnectedClusterName() == ""
}

// gone asks the node's control subject; "no responders" from a single
// server means its connection is gone. A process killed a moment ago may
// still have its subscription on the server (which has not yet read the
// closed socket): the ping then goes unanswered rather than refused, so it
// is asked again a few times. A live node answers at once.
func (m *Member) gone(ctx context.Context, node string) bool {
	subj, err := m.cfg.Subjects.NodeSubject(node)
	if err != nil {
		return false
	}
	for attempt := range pingAttempts {
		pctx, cancel := context.WithTimeout(ctx, m.cfg.PingTimeout)
		_, err = m.nc.RequestWithContext(pctx, subj, nil)
		cancel()
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return true
		case err == nil || ctx.Err() != nil:
			return false // it answered: alive
		}
		if attempt < pingAttempts-1 && sleep(ctx, 5*time.Millisecond) != nil {
			return false
		}
	}
	return false
}

// pingAttempts bounds the fast path's questions to a silent node: with
// DefaultPingTimeout, about 200 ms, within the lease path's wait.
const pingAttempts = 8

// lapse is how waiting out a lease ended.
type lapse int

const (
	lapsed   lapse = iota // no renewal for a lease plus the margin (or released)
	renewed               // the owner renewed: it lives
	claimed               // another node claimed the group meanwhile
	canceled              // ctx ended
)

// waitLapse waits until no renewal of e's owner has been seen for a lease
// plus the margin, by this node's clock. It returns the revision to claim
// against.
func (m *Member) waitLapse(ctx context.Context, e Entry) (uint64, lapse) {
	for {
		cur, _, seen, _, ch := m.mon.state()
		if cur.Revision != e.Revision {
			switch {
			case cur.Owner == e.Owner && cur.Epoch == e.Epoch && cur.Released:
				return cur.Revision, lapsed
			case cur.Owner == e.Owner && cur.Epoch == e.Epoch:
				return 0, renewed
			default:
				return 0, claimed
			}
		}
		left := m.cfg.Lease + m.cfg.Margin - time.Since(seen)
		if left <= 0 {
			return cur.Revision, lapsed
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, canceled
		}
		t.Stop()
	}
}

// takeOver drains the stream and claims the group by compare-and-set
// against revision rev.
func (m *Member) takeOver(ctx context.Context, e Entry, rev uint64, failed string) (bool, FailoverReply) {
	t0 := time.Now()
	last, err := m.lastSeq(ctx)
	if err != nil {
		return false, FailoverReply{Error: fmt.Sprintf("read the stream's last sequence: %v", err)}
	}
	if m.hooks.Drain != nil {
		if err := m.hooks.Drain(ctx, last); err != nil {
			return false, FailoverReply{Error: fmt.Sprintf("drain to stream seq %d: %v", last, err)}
		}
	}
	drain := time.Since(t0)

	t1 := time.Now()
	next := e.claimed(m.cfg.Node, m.cfg.Address, last, time.Now())
	w, err := m.cas(ctx, next, rev)
	claim := time.Since(t1)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			cur, rerr := m.readEntry(ctx)
			if rerr == nil && cur.Owner == failed && cur.Epoch == e.Epoch {
				// The owner renewed after all (its renewal had not reached
				// this node's watcher): report it, so the signal is
				// answered and a gateway that still sees it dead signals
				// again.
				m.log.Info("the owner renewed before the claim", "owner", failed, "epoch", cur.Epoch)
				return false, m.ownerReply(cur)
			}
			m.log.Info("another node claimed first", "epoch", next.Epoch)
			return false, FailoverReply{}
		}
		return false, FailoverReply{Error: fmt.Sprintf("claim epoch %d: %v", next.Epoch, err)}
	}
	next.Revision = w.rev
	sessions, perr := m.becomePrimary(ctx, next, w, failed)
	rep := FailoverReply{Node: m.cfg.Node, Address: m.cfg.Address, Epoch: next.Epoch, Promoted: true,
		Sessions: sessions, Drain: drain, Claim: claim}
	if perr != nil {
		rep.Error = perr.Error()
	}
	return true, rep
}

func (m *Member) lastSeq(ctx context.Context) (uint64, error) {
	info, err := m.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// written says when a successful write of the entry was sent, and on
// which connection: the lease counts from then.
type written struct {
	sent time.Time
	conn uint64 // the connection's reconnect count
	rev  uint64
}

// cas writes next over revision rev (or creates the entry when rev is 0),
// retrying errors that are not a conflict (the bucket's leader moving).
func (m *Member) cas(ctx context.Context, next Entry, rev uint64) (written, error) {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn := m.nc.Stats().Reconnects
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var newRev uint64
		var err error
		if rev == 0 {
			newRev, err = m.kv.Create(cctx, m.cfg.Group, next.encode())
		} else {
			newRev, err = m.kv.Update(cctx, m.cfg.Group, next.encode(), rev)
		}
		cancel()
		if err == nil {
			return written{sent, conn, newRev}, nil
		}
		conflict := errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
		if conflict {
			// Ask the leader what the entry is. A retried write that had
			// landed conflicts with itself; on a replicated bucket a write
			// still in flight makes a conflict that is not one (10164):
			// the entry is still at rev, and the write is retried.
			cur, rerr := m.readEntry(ctx)
			switch {
			case rerr == nil && cur.Owner == next.Owner && cur.Epoch == next.Epoch && cur.Fence == next.Fence:
				return written{sent, conn, cur.Revision}, nil
			case rerr == nil && cur.Revision != rev, errors.Is(rerr, errNoEntry) && rev != 0:
				return written{}, err // a real conflict: someone else wrote
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return written{}, err
		}
		m.log.Debug("claim retry", "epoch", next.Epoch, "err", err)
		if sleep(ctx, wait) != nil {
			return written{}, ctx.Err()
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// becomePrimary switches to the primary role after a successful claim sent
// at sent, starts renewing, and runs the Promote hook.
func (m *Member) becomePrimary(ctx context.Context, e Entry, w written, previous string) (int, error) {
	rctx, cancel := context.WithCancel(m.ctx)
	m.mu.Lock()
	m.role, m.mine, m.renewSent, m.renewConn = Primary, e, w.sent, w.conn
	m.needRenew, m.releasing, m.stopRenew = false, false, cancel
	// The new claim fences from now on, before the watcher shows it.
	newClaims := m.lastEpoch != e.Epoch
	m.lastEpoch = e.Epoch
	c := append(snapshot.Claims{}, e.Claims...)
	m.claims.Store(&c)
	m.mu.Unlock()
	if newClaims && m.hooks.Claims != nil {
		m.hooks.Claims(e.Claims)
	}
	m.wg.Add(1)
	go m.renewLoop(rctx)

	if m.hooks.Promote == nil {
		return 0, nil
	}
	return m.hooks.Promote(ctx, Promotion{Epoch: e.Epoch, Fence: e.Fence, Claims: e.Claims, Previous: previous})
}

// demote leaves the primary role.
func (m *Member) demote(err error) {
	m.mu.Lock()
	if m.role != Primary {
		m.mu.Unlock()
		return
	}
	m.role = Backup
	if m.stopRenew != nil {
		m.stopRenew()
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Error("no longer primary", "err", err)
	} else {
		m.log.Info("handed the group over")
	}
	if m.hooks.Demote != nil {
		m.hooks.Demote(err)
	}
}

// testHookRenew, when set by a test, runs before each renewal; blocking
// in it stands for a primary paused (SIGSTOP) while it renews.
var testHookRenew atomic.Pointer[func(node string)]

// renewLoop renews the lease every Lease/3, and at once after a reconnect.
func (m *Member) renewLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.renewC:
		}
		m.renew(ctx)
	}
}

// renew writes a renewal by compare-and-set. A conflict means another node
// claimed the group, unless the entry is our own earlier renewal whose ack
// was lost.
func (m *Member) renew(ctx context.Context) {
	m.mu.Lock()
	if m.role != Primary || m.releasing {
		m.mu.Unlock()
		return
	}
	e := m.mine
	rev := e.Revision
	m.mu.Unlock()

	if hook := testHookRenew.Load(); hook != nil {
		(*hook)(m.cfg.Node)
	}
	e.Renewed, e.Renewals = time.Now().UTC(), e.Renewals+1
	conn := m.nc.Stats().Reconnects
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/2)
	newRev, err := m.kv.Update(rctx, m.cfg.Group, e.encode(), rev)
	cancel()
	if err == nil {
		m.mu.Lock()
		if m.role == Primary && sent.After(m.renewSent) {
			e.Revision = newRev
			m.mine, m.renewSent, m.renewConn, m.needRenew = e, sent, conn, false
		}
		m.mu.Unlock()
		return
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		got, gerr := m.readEntry(ctx)
		switch {
		case gerr != nil && !errors.Is(gerr, errNoEntry):
			return // cannot tell yet; the lease lapses if this goes on
		case gerr == nil && got.Revision == rev:
			return // a write in flight made the conflict; the next renewal retries
		case gerr == nil && got.Owner == m.cfg.Node && got.Epoch == e.Epoch && !got.Released:
			m.mu.Lock()
			m.mine = got // our own renewal whose ack was lost
			m.mu.Unlock()
			m.kick()
			return
		}
		m.demote(fmt.Errorf("%w: epoch %d owned by %s", ErrLostGroup, got.Epoch, got.Owner))
		return
	}
	m.log.Debug("lease renewal failed", "err", err)
}

// Claim makes this node the primary if the group is free, released, or its
// owner's lease has lapsed (it waits out a lease to know). It returns
// ErrHeld when another live node holds the group: the node starts as a
// backup. A node started as primary calls it once it has caught up.
func (m *Member) Claim(ctx context.Context) error {
	m.claim.Lock()
	defer m.claim.Unlock()
	e, have := m.mon.Owner()
	if m.Role() == Primary {
		return nil
	}
	rev := e.Revision
	if have && !e.Released {
		var out lapse
		rev, out = m.waitLapse(ctx, e)
		if out == canceled {
			return fmt.Errorf("group %s: claim: %w", m.cfg.Group, ctx.Err())
		}
		if out != lapsed {
			cur, _ := m.Entry()
			return fmt.Errorf("group %s: %w: %s holds epoch %d and renews its lease", m.cfg.Group, ErrHeld, cur.Owner, cur.Epoch)
		}
	}
	if !have {
		e = Entry{} // a new group: epoch 1
		rev = 0
	}
	promoted, rep := m.takeOver(ctx, e, rev, e.Owner)
	if !promoted {
		if rep.Error != "" {
			return fmt.Errorf("group %s: %s", m.cfg.Group, rep.Error)
		}
		cur, _ := m.Entry()
		return fmt.Errorf("group %s: %w: %s claimed epoch %d first", m.cfg.Group, ErrHeld, cur.Owner, cur.Epoch)
	}
	m.log.Info("claimed the group", "epoch", rep.Epoch, "previous", e.Owner, "sessions", rep.Sessions)
	if rep.Error != "" {
		return fmt.Errorf("group %s: promoted, but %s", m.cfg.Group, rep.Error)
	}
	return nil
}

// Release hands the group over gracefully: the lease stops being valid at
// once, the entry is marked released, and backups claim without waiting
// out the lease. The caller has drained in-flight requests first.
func (m *Member) Release(ctx context.Context) error {
	m.mu.Lock()
	if m.role != Primary {
		m.mu.Unlock()
		return ErrNotPrimary
	}
	m.releasing = true
	e := m.mine
	rev := e.Revision
	m.mu.Unlock()
	e.Released, e.Renewed = true, time.Now().UTC()
	_, err := m.cas(ctx, e, rev)
	if err != nil {
		return fmt.Errorf("group %s: release epoch %d: %w", m.cfg.Group, e.Epoch, err)
	}
	m.demote(nil)
	return nil
}

// heartbeatLoop publishes the node's heartbeat.
func (m *Member) heartbeatLoop() {
	defer m.wg.Done()
	subj, err := m.cfg.Subjects.HeartbeatSubject(m.cfg.Node)
	if err != nil {
		return
	}
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	for {
		cur, _ := m.mon.Owner()
		hb := Heartbeat{Node: m.cfg.Node, Group: m.cfg.Group, Role: m.Role().String(), Address: m.cfg.Address, Epoch: cur.Epoch, Time: time.Now().UTC()}
		if m.hooks.Progress != nil {
			hb.Lag, hb.Sessions, hb.CaughtUp = m.hooks.Progress()
		}
		data, _ := json.Marshal(hb)
		m.nc.Publish(subj, data)
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
