package protocol

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// phase is where a takeover is.
type phase uint8

const (
	waiting   phase = iota // for the lease to lapse, or the crash to be proven
	reading                // the stream's last sequence
	draining               // the copy of the stream, up to it
	claiming               // the compare-and-set of the entry
	promoting              // the node takes over the sessions
)

func (p phase) String() string {
	return [...]string{"waiting out the lease", "reading the stream's last sequence", "draining", "claiming", "promoting"}[p]
}

// takeover is one attempt to replace the group's owner: wait (out the
// lease, or for the proof of a crash), read the stream's last sequence,
// drain to it, claim the entry over the revision waited on. The order
// matters: every snapshot the old primary answered for was acknowledged
// before its lease ran out, so it is at or below the sequence read after
// the wait, and the new primary holds it.
type takeover struct {
	id       uint64
	reason   string
	failed   string // the owner being replaced; "" for a new group
	base     Entry  // the entry being replaced: the claim compares with its revision
	baseHave bool
	started  Mono
	deadline Mono // 0: none (a startup claim, bounded by its caller)
	phase    phase

	pinging bool // the fast path: asking the failed node's control subject
	pings   int
	pingAt  Mono
	pingOut bool
	gone    bool // proven crashed: no responders

	asked bool   // the stream's last sequence was asked for
	seq   uint64 // the fence sequence
	write WriteID
	fast  bool // the wait ended by the fast path

	waited, drained, claimed Mono

	signals []SignalID
	ops     []OpID
}

// Signal takes a failover signal. fast says whether the crash fast path is
// allowed here (the driver knows what NATS looks like). The signal is
// answered with a Reply, at once or once the takeover it starts or joins
// has settled.
func (m *Member) Signal(now Mono, id SignalID, req FailoverRequest, fast bool) []Action {
	fast = fast && req.Reason == ReasonUnreachable
	switch {
	case m.role == Primary:
		if req.Failed == m.cfg.Node && !m.Valid(now) {
			// Unsure of its own lease, the primary does not vote on its
			// own failure: the backups judge it.
			return []Action{Reply{Signal: id, None: true}}
		}
		// The owner answers for itself: with a valid lease no backup can
		// claim, and a late signal about a node it replaced must not wait
		// for backups that may not have seen its claim yet.
		return []Action{Reply{Signal: id, Reply: ownerReply(m.mine)}}
	case !m.loaded:
		return []Action{Reply{Signal: id, None: true}}
	case !m.have:
		return []Action{Reply{Signal: id, Reply: FailoverReply{Error: "the group has no entry: no primary to replace"}}}
	case m.cur.Owner != req.Failed:
		return []Action{Reply{Signal: id, Reply: ownerReply(m.cur)}} // settled already: a late or duplicate signal
	}
	if to := m.to; to != nil {
		to.signals = append(to.signals, id)
		if to.deadline == 0 || to.deadline > now.Add(m.cfg.FailoverTimeout) {
			to.deadline = now.Add(m.cfg.FailoverTimeout)
		}
		if fast && to.phase == waiting && !to.pinging && to.pings == 0 {
			return m.startPinging(now, to)
		}
		return nil
	}
	to := m.begin(now, req.Reason, req.Failed)
	to.signals = []SignalID{id}
	to.deadline = now.Add(m.cfg.FailoverTimeout)
	var acts []Action
	if fast && to.phase == waiting {
		acts = m.startPinging(now, to)
	}
	return append(acts, m.advance(now)...)
}

// Claim makes this member the primary if the group is free, released, or
// its owner's lease has lapsed (it waits out a lease to know). Done
// reports op: Err wraps ErrHeld when another live node holds the group.
// A node started as primary calls it once it has caught up.
func (m *Member) Claim(now Mono, op OpID) []Action {
	switch {
	case m.role == Primary:
		return []Action{Done{Op: op}}
	case !m.loaded:
		return []Action{Done{Op: op, Err: errors.New("the group entry is not known yet")}}
	case m.to != nil:
		m.to.ops = append(m.to.ops, op)
		return nil
	}
	to := m.begin(now, ReasonStartup, m.cur.Owner)
	to.ops = []OpID{op}
	return m.advance(now)
}

// maybeClaimReleased starts a takeover of a group its owner released: a
// graceful handover, claimed at once (still draining first).
func (m *Member) maybeClaimReleased(now Mono) []Action {
	if !m.handoverDue(now) {
		return nil
	}
	to := m.begin(now, ReasonReleased, m.cur.Owner)
	to.deadline = now.Add(m.cfg.FailoverTimeout)
	return m.advance(now)
}

// handoverDue reports whether a released entry waits for this backup's
// claim.
func (m *Member) handoverDue(now Mono) bool {
	return m.loaded && m.role == Backup && m.to == nil && m.have && m.cur.Released && m.released != m.cur.Epoch && now >= m.handoverAt
}

// handoverRetry spaces the attempts to claim a released group that failed.
const handoverRetry = 100 * time.Millisecond

func (m *Member) begin(now Mono, reason, failed string) *takeover {
	m.nextTO++
	to := &takeover{id: m.nextTO, reason: reason, failed: failed, base: m.cur, baseHave: m.have, started: now}
	if !m.have || m.cur.Released {
		to.phase = reading // a new group, or a handover: nothing to wait out
	}
	m.to = to
	return to
}

func (m *Member) startPinging(now Mono, to *takeover) []Action {
	to.pinging, to.pings, to.pingOut = true, 1, true
	return []Action{Ping{Takeover: to.id, Node: to.failed}}
}

// PingDone reports the answer to a Ping.
func (m *Member) PingDone(now Mono, takeover uint64, r PingResult) []Action {
	to := m.to
	if to == nil || to.id != takeover || !to.pinging {
		return nil
	}
	to.pingOut = false
	switch r {
	case NoResponders:
		to.gone, to.pinging = true, false
	case Answered:
		to.pinging = false // alive: the lease decides
	default:
		if to.pings < m.cfg.PingAttempts {
			to.pingAt = now.Add(m.cfg.PingSpacing)
		} else {
			to.pinging = false
		}
	}
	return append(m.advance(now), m.Tick(now)...)
}

// LastSeqDone reports the stream's last sequence.
func (m *Member) LastSeqDone(now Mono, takeover uint64, seq uint64, err error) []Action {
	to := m.to
	if to == nil || to.id != takeover || to.phase != reading {
		return nil
	}
	if err != nil {
		return m.conclude(now, failedTakeover, fmt.Errorf("read the stream's last sequence: %w", err))
	}
	to.seq, to.phase = seq, draining
	return []Action{Drain{Takeover: to.id, Seq: seq}}
}

// DrainDone reports that this node's copy holds the stream up to the
// sequence of the Drain (err nil), or why not.
func (m *Member) DrainDone(now Mono, takeover uint64, err error) []Action {
	to := m.to
	if to == nil || to.id != takeover || to.phase != draining {
		return nil
	}
	if err != nil {
		return m.conclude(now, failedTakeover, fmt.Errorf("drain to stream seq %d: %w", to.seq, err))
	}
	to.drained, to.phase = now, claiming
	return m.advance(now)
}

// PromoteDone reports that the node has taken over its sessions (how
// many), or what went wrong; the signals are answered now.
func (m *Member) PromoteDone(now Mono, sessions int, err error) []Action {
	to := m.to
	if to == nil || to.phase != promoting {
		return nil
	}
	rep := FailoverReply{Node: m.cfg.Node, Address: m.cfg.Address, Epoch: m.mine.Epoch, Promoted: true,
		FastPath: to.fast, Sessions: sessions, Took: now.Sub(to.started),
		Wait: to.waited.Sub(to.started), Drain: to.drained.Sub(to.waited), Claim: to.claimed.Sub(to.drained)}
	if err != nil {
		rep.Error = err.Error()
		err = fmt.Errorf("promoted, but %w", err)
	}
	return m.settle(now, to, rep, false, err)
}

// advance moves the takeover on as far as what is known allows.
func (m *Member) advance(now Mono) []Action {
	to := m.to
	if to == nil {
		return nil
	}
	if to.deadline != 0 && now >= to.deadline && to.phase < promoting {
		return m.conclude(now, failedTakeover, fmt.Errorf("%w after %v while %s", ErrTimeout, now.Sub(to.started), to.phase))
	}
	if to.phase < promoting && to.write == 0 {
		// Has the entry moved since the takeover began?
		switch m.judgeBase(to) {
		case baseSame:
		case baseReleased:
			// The owner handed over: claim at once, over the release. Its
			// last writes may have landed after a sequence read earlier
			// (renewals between, unseen while a claim was in flight): read
			// the stream's last sequence and drain again, under a new id
			// so that answers to the earlier read and drain are ignored.
			// (The simulator found a claim whose fence was read before
			// the owner's last snapshots: they were fenced, and answered.)
			to.base = m.cur
			if m.cfg.Bugs.FenceBeforeRelease {
				if to.phase == waiting {
					to.phase = reading
				}
				break
			}
			if to.phase != reading || to.asked {
				m.nextTO++
				to.id = m.nextTO
			}
			to.phase, to.asked = reading, false
		case baseRenewed:
			return m.conclude(now, renewedTakeover, nil)
		case baseClaimed:
			return m.conclude(now, lostTakeover, nil)
		}
	}
	switch to.phase {
	case waiting:
		if to.pinging && !to.pingOut && now >= to.pingAt {
			to.pings++
			to.pingOut = true
			return []Action{Ping{Takeover: to.id, Node: to.failed}}
		}
		if !to.gone && now < m.curAt.Add(m.cfg.Lease+m.cfg.Margin) {
			return nil
		}
		to.fast = to.gone
		to.pinging = false
		to.phase = reading
		fallthrough
	case reading:
		if !to.asked {
			to.asked, to.waited = true, now
			return []Action{ReadLastSeq{Takeover: to.id}}
		}
	case claiming:
		if to.write != 0 {
			return nil
		}
		next := to.base.claimed(m.cfg.Node, m.cfg.Address, to.seq)
		rev := to.base.Revision
		if !to.baseHave {
			next, rev = Entry{}.claimed(m.cfg.Node, m.cfg.Address, to.seq), 0
		}
		w, a := m.send(now, KindClaim, next, rev)
		w.prev, w.takeover = to.failed, to.id
		to.write = w.id
		return []Action{a}
	}
	return nil
}

// What became of the entry a takeover replaces.
type baseChange uint8

const (
	baseSame     baseChange = iota
	baseReleased            // its owner released it: claim at once, over the new revision
	baseRenewed             // its owner renewed: it lives
	baseClaimed             // another node claimed the group (or the entry went away)
)

func (m *Member) judgeBase(to *takeover) baseChange {
	switch {
	case m.have == to.baseHave && m.cur.Revision == to.base.Revision:
		return baseSame
	case !m.have || !to.baseHave:
		return baseClaimed
	case m.cur.Owner == to.base.Owner && m.cur.Epoch == to.base.Epoch && m.cur.Released:
		if to.base.Released {
			return baseSame // a redelivery of the release: nothing new
		}
		return baseReleased
	case m.cur.Owner == to.base.Owner && m.cur.Epoch == to.base.Epoch:
		return baseRenewed
	}
	return baseClaimed
}

// How a takeover ended without a promotion.
type ending uint8

const (
	renewedTakeover ending = iota // the owner lives
	lostTakeover                  // another node claimed first: it answers
	failedTakeover                // an error
)

func (m *Member) conclude(now Mono, how ending, err error) []Action {
	to := m.to
	switch how {
	case renewedTakeover:
		return m.settle(now, to, ownerReply(m.cur), false,
			fmt.Errorf("%w: %s holds epoch %d and renews its lease", ErrHeld, m.cur.Owner, m.cur.Epoch))
	case lostTakeover:
		return m.settle(now, to, FailoverReply{}, true,
			fmt.Errorf("%w: %s claimed epoch %d first", ErrHeld, m.cur.Owner, m.cur.Epoch))
	}
	return m.settle(now, to, FailoverReply{Error: err.Error()}, false, err)
}

// settle ends the takeover: each signal gets rep (none: another member
// answers), each waiting operation err.
func (m *Member) settle(now Mono, to *takeover, rep FailoverReply, none bool, err error) []Action {
	m.to = nil
	var acts []Action
	for _, s := range to.signals {
		acts = append(acts, Reply{Signal: s, Reply: rep, None: none})
	}
	for _, op := range to.ops {
		acts = append(acts, Done{Op: op, Err: err})
	}
	if to.reason == ReasonReleased && err != nil && !errors.Is(err, ErrHeld) {
		// A handover that failed (a drain stuck behind a leader
		// election): no signal comes for a released entry, so it is tried
		// again after a pause.
		m.handoverAt = now.Add(handoverRetry)
	}
	return append(acts, m.maybeClaimReleased(now)...)
}

// promote switches to the primary role after a claim that landed.
func (m *Member) promote(now Mono, w *write, e Entry, from Mono) []Action {
	m.role, m.mine, m.leaseFrom, m.releasing = Primary, e, from, false
	m.fresh = w.gen == m.gen
	m.renewals = max(m.renewals, e.Renewals)
	m.nextRenew = from.Add(m.cfg.RenewEvery)
	m.writes = slices.DeleteFunc(m.writes, func(x *write) bool { return x.kind == KindClaim })
	var acts []Action
	// The new claim fences from now on, before the watch shows it.
	if !slices.Equal(m.claims, e.Claims) {
		m.claims = slices.Clone(e.Claims)
		acts = append(acts, ClaimsChanged{Claims: m.claims})
	}
	if to := m.to; to != nil && to.id == w.takeover {
		to.phase, to.claimed = promoting, now
	} else if to != nil {
		// A claim of an earlier attempt landed while another ran: that one
		// is over.
		acts = append(acts, m.settle(now, to, FailoverReply{Error: "superseded by an earlier claim that landed"}, false,
			errors.New("superseded by an earlier claim that landed"))...)
		m.to = nil
	}
	return append(acts, Promote{Promotion{Epoch: e.Epoch, Fence: e.Fence, Claims: m.claims, Previous: w.prev}})
}
