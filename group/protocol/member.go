package protocol

import (
	"fmt"
	"slices"

	"understudy/fencing"
)

// Role is a member's part in the group.
type Role uint8

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

// Member is one node's membership of a group as a pure state machine: the
// decisions of the failover contract with no I/O, no clock and no
// goroutines. Its driver feeds it events, each with the time it happened
// at on the node's monotonic clock, and carries out the actions it
// returns. A Member is not safe for concurrent use: the driver serializes
// calls.
type Member struct {
	cfg Config

	// The newest entry known, by revision: from the watch, from a write
	// that landed, or from a read after a conflict.
	cur    Entry
	have   bool // cur exists; false: no entry (cur.Revision may still be a delete's)
	loaded bool // the watch's initial state is known
	curAt  Mono // when cur's revision became known here
	claims fencing.Claims

	role       Role
	mine       Entry // as primary: the entry as this member's last write landed
	leaseFrom  Mono  // first-attempt send time of the newest landed write
	connected  bool
	gen        uint64 // disconnects and reconnects so far
	fresh      bool   // a write sent since the last disconnect or reconnect has landed
	releasing  bool
	released   uint64 // the epoch this member released, 0 if none
	nextRenew  Mono
	renewing   WriteID // the renewal in flight, 0 if none
	renewals   uint64  // the highest Renewals number this member has used
	release    OpID    // the Release waiting, 0 if none
	handoverAt Mono    // a failed claim of a released group is tried again from then

	writes []*write // writes whose outcome may still be learned
	nextW  WriteID

	to     *takeover
	nextTO uint64
}

// write is one logical write and what is known of its attempts.
type write struct {
	id       WriteID
	kind     WriteKind
	entry    Entry  // what it writes
	rev      uint64 // the revision it compares with; 0: create
	prev     string // claim: the owner it replaces
	first    Mono   // its first attempt was sent
	last     Mono   // its latest attempt was sent
	gen      uint64 // the connection generation at its first attempt
	attempts int
	inFlight bool
	maybe    bool // an attempt may have landed (no answer came)
	settled  bool // known to have landed
	retryAt  Mono // a retry is due; 0: none scheduled
	wait     Mono // the next pause before a retry
	takeover uint64
}

// New returns a member's core. The group entry is unknown until the
// driver reports the watch's initial state (Observe, then Loaded).
func New(cfg Config) *Member {
	return &Member{cfg: cfg.WithDefaults(), connected: true}
}

// Config returns the configuration with defaults applied.
func (m *Member) Config() Config { return m.cfg }

// Role returns the member's role.
func (m *Member) Role() Role { return m.role }

// Epoch returns the epoch this member publishes with as primary, or 0.
func (m *Member) Epoch() uint64 {
	if m.role != Primary {
		return 0
	}
	return m.mine.Epoch
}

// Entry returns the newest entry known, and whether it exists.
func (m *Member) Entry() (Entry, bool) { return m.cur, m.have }

// Seen returns when the newest entry's revision became known here.
func (m *Member) Seen() Mono { return m.curAt }

// Claims returns the group's history of claims as this member knows it.
// It changes only by replacement: a caller may keep the slice.
func (m *Member) Claims() fencing.Claims { return m.claims }

// Loaded reports whether the watch's initial state is known.
func (m *Member) Loaded() bool { return m.loaded }

// Valid reports whether this member may answer an interaction now as far
// as the lease goes: it is the primary, not handing over, connected, a
// write sent since its last disconnect or reconnect has landed, and the
// newest landed write was first sent less than a lease ago. (A backup
// waits a lease plus a margin after it last saw the entry change, and
// claims by compare-and-set over that revision, so two members are never
// valid at once while clock rates drift by less than the margin.)
func (m *Member) Valid(now Mono) bool {
	return m.role == Primary && !m.releasing && m.connected && m.fresh && now < m.leaseFrom.Add(m.cfg.Lease)
}

// MayAnswer is the answer rule: an interaction applied and published at
// epoch may be answered now only if the lease is valid and epoch is the
// current epoch. A valid lease of a later epoch is not enough: the
// interaction's snapshot may be fenced.
func (m *Member) MayAnswer(now Mono, epoch uint64) bool {
	return m.Valid(now) && (m.cfg.Bugs.AnswerAnyEpoch || epoch == m.mine.Epoch)
}

// LeaseExpiry returns when the lease lapses by this member's clock, and
// false when it holds none.
func (m *Member) LeaseExpiry() (Mono, bool) {
	if m.role != Primary {
		return 0, false
	}
	return m.leaseFrom.Add(m.cfg.Lease), true
}

// Observe takes a revision of the group entry (exists false: deleted or
// purged). Revisions are applied in order: one not newer than the newest
// known is a redelivery and changes nothing, so a late delivery never
// demotes a newer primary or rolls its claims back.
func (m *Member) Observe(now Mono, e Entry, exists bool) []Action {
	return m.learn(now, e, exists)
}

// Load says the watch has delivered the entry's current state.
func (m *Member) Load(now Mono) []Action {
	if m.loaded {
		return nil
	}
	m.loaded = true
	return m.maybeClaimReleased(now)
}

// Disconnected says the connection to NATS is gone. Anything sent before
// may be lost, and the group may change hands meanwhile: the lease is
// invalid until a write sent after the next reconnect has landed.
func (m *Member) Disconnected(now Mono) []Action {
	m.connected, m.fresh = false, false
	m.gen++
	return nil
}

// Reconnected says the connection is back. A primary renews at once; it
// answers nothing until that renewal has landed, so that it learns of a
// claim made while it was away (the fast path relies on this).
func (m *Member) Reconnected(now Mono) []Action {
	m.connected, m.fresh = true, false
	m.gen++
	if m.role == Primary {
		m.nextRenew = now
	}
	return m.Tick(now)
}

// Next returns the time of the next Tick the member needs, and false when
// it waits only for events.
func (m *Member) Next() (Mono, bool) {
	var next Mono
	ok := false
	at := func(t Mono) {
		if !ok || t < next {
			next, ok = t, true
		}
	}
	if m.role == Primary && !m.releasing && m.renewing == 0 && m.connected {
		at(m.nextRenew)
	}
	for _, w := range m.writes {
		if w.retryAt != 0 {
			at(w.retryAt)
		}
	}
	if m.handoverDue(m.handoverAt) && m.handoverAt > 0 {
		at(m.handoverAt)
	}
	if to := m.to; to != nil {
		if to.phase == waiting {
			at(m.curAt.Add(m.cfg.Lease + m.cfg.Margin))
			if to.pinging && !to.pingOut {
				at(to.pingAt)
			}
		}
		if to.deadline != 0 && to.phase < promoting {
			at(to.deadline)
		}
	}
	return next, ok
}

// Tick lets time pass: renewals, retries, the lapse a backup waits out,
// the fast path's pings and the bound of a takeover.
func (m *Member) Tick(now Mono) []Action {
	var acts []Action
	if m.role == Primary && !m.releasing && m.renewing == 0 && m.connected && now >= m.nextRenew {
		acts = append(acts, m.renew(now))
	}
	for _, w := range m.writes {
		if w.retryAt != 0 && now >= w.retryAt {
			acts = append(acts, m.retry(now, w))
		}
	}
	if m.to != nil {
		acts = append(acts, m.advance(now)...)
	}
	return append(acts, m.maybeClaimReleased(now)...)
}

// WriteDone reports an attempt of a Write.
func (m *Member) WriteDone(now Mono, r WriteResult) []Action {
	w := m.write(r.ID)
	if w == nil {
		return nil // settled already (its landing was seen first), or given up
	}
	w.inFlight = false
	if w.kind == KindRenew && m.renewing == w.id {
		m.renewing = 0
	}
	switch r.Outcome {
	case Landed:
		acts := m.landed(now, w, r.Rev)
		return append(acts, m.Tick(now)...)
	case Unknown:
		w.maybe = true
		return append(m.again(now, w), m.Tick(now)...)
	case NotSent:
		if !w.maybe && w.kind == KindRenew {
			m.drop(w)
		}
		return append(m.again(now, w), m.Tick(now)...)
	}
	// A conflict. What the leader holds is an observation like any other:
	// it may show this very write (an earlier attempt landed), another
	// write of this member's, or another owner.
	if r.ReadFailed {
		return append(m.again(now, w), m.Tick(now)...)
	}
	if w.kind == KindRelease && m.cfg.Bugs.LooseRelease && r.Exists && m.role == Primary &&
		r.Current.Owner == m.cfg.Node && r.Current.Epoch == m.mine.Epoch && r.Current.Fence == m.mine.Fence {
		// The planted defect: a renewal of this member's taken for the
		// release.
		return m.landed(now, w, r.Current.Revision)
	}
	acts := m.learn(now, r.Current, r.Exists)
	if w.settled {
		return append(acts, m.Tick(now)...) // an earlier attempt landed
	}
	if r.Exists && r.Current.Revision == w.rev && m.write(w.id) != nil {
		// The entry is still at the revision the write compared with: on
		// a replicated bucket a write in flight makes such a conflict.
		// Try again.
		return append(append(acts, m.again(now, w)...), m.Tick(now)...)
	}
	// The write did not land and never will.
	m.drop(w)
	switch w.kind {
	case KindRenew:
		// learn demoted the member if another owner holds the group, or
		// followed an entry of its own whose record it no longer had.
		if m.role == Primary {
			m.nextRenew = now
		}
	case KindRelease:
		if m.role == Primary && m.releasing && m.release != 0 {
			acts = append(acts, m.releaseWrite(now)) // over the renewal that landed
		}
	case KindClaim:
		// The takeover judges the entry found: renewed, released, or
		// claimed by another.
		if to := m.to; to != nil && to.write == w.id {
			to.write = 0
			acts = append(acts, m.advance(now)...)
		}
	}
	return append(acts, m.Tick(now)...)
}

// learn takes an entry at a revision, from the watch or a read, in
// revision order.
func (m *Member) learn(now Mono, e Entry, exists bool) []Action {
	if (m.have || m.cur.Revision != 0) && e.Revision <= m.cur.Revision {
		return nil
	}
	m.cur, m.have, m.curAt = e, exists, now
	if !exists {
		m.cur = Entry{Revision: e.Revision}
	}
	acts := m.noteClaims()
	if exists {
		if w := m.match(e); w != nil {
			acts = append(acts, m.landed(now, w, e.Revision)...)
			m.prune()
			return append(acts, m.Tick(now)...)
		}
	}
	m.prune()
	if m.role == Primary {
		if exists && e.Owner == m.cfg.Node && e.Epoch == m.mine.Epoch && e.Released {
			m.released = e.Epoch // a release of this member's whose record is gone
			return append(acts, m.demote(nil)...)
		}
		if exists && e.Owner == m.cfg.Node && e.Epoch == m.mine.Epoch {
			// A write of this member's whose record is gone: follow its
			// revision so that the next renewal can land. It counts for
			// no lease: when it was sent is not known.
			m.mine = e
			m.renewals = max(m.renewals, e.Renewals)
			return acts
		}
		owner, epoch := e.Owner, e.Epoch
		if !exists {
			owner = "nobody (the entry was deleted)"
		}
		return append(acts, m.demote(fmt.Errorf("%w: epoch %d owned by %s", ErrLostGroup, epoch, owner))...)
	}
	if m.to != nil {
		acts = append(acts, m.advance(now)...)
	}
	return append(acts, m.maybeClaimReleased(now)...)
}

// noteClaims follows the newest entry's history of claims. Claims grow
// with revisions, so the newest entry's are the fullest.
func (m *Member) noteClaims() []Action {
	if !m.have || slices.Equal(m.cur.Claims, m.claims) || len(m.cur.Claims) == 0 {
		return nil
	}
	if last, ok := m.claims.Last(); ok {
		if cl, _ := m.cur.Claims.Last(); cl.Epoch < last.Epoch {
			return nil // never roll claims back
		}
	}
	m.claims = slices.Clone(m.cur.Claims)
	return []Action{ClaimsChanged{Claims: m.claims}}
}

// match returns the write of this member's that e is, if any: the one
// sent first when several wrote the same content.
func (m *Member) match(e Entry) *write {
	var found *write
	for _, w := range m.writes {
		if w.entry.Same(e) && (found == nil || w.first < found.first) {
			found = w
		}
	}
	return found
}

// prune forgets writes that can never land: the entry has moved past the
// revision they compare with. (Had one landed, its revision was learned
// in order and matched.)
func (m *Member) prune() {
	m.writes = slices.DeleteFunc(m.writes, func(w *write) bool {
		gone := !w.inFlight && (w.rev < m.cur.Revision || (w.rev == 0 && m.cur.Revision > 0 && m.have))
		if gone && m.renewing == w.id {
			m.renewing = 0
		}
		if gone && m.to != nil && m.to.write == w.id && !m.cfg.Bugs.WaitPrunedClaim {
			// The takeover's claim can no longer land: the takeover judges
			// the entry that moved past it, instead of waiting for a retry
			// that will never be sent. (The simulator found a takeover
			// stuck here until its deadline, and a released group nobody
			// claimed meanwhile.)
			m.to.write = 0
		}
		return gone
	})
}

func (m *Member) write(id WriteID) *write {
	for _, w := range m.writes {
		if w.id == id {
			return w
		}
	}
	return nil
}

func (m *Member) drop(w *write) {
	m.writes = slices.DeleteFunc(m.writes, func(x *write) bool { return x == w })
	if m.renewing == w.id {
		m.renewing = 0
	}
}

// send registers a new logical write and returns its first attempt.
func (m *Member) send(now Mono, kind WriteKind, e Entry, rev uint64) (*write, Write) {
	m.nextW++
	w := &write{id: m.nextW, kind: kind, entry: e, rev: rev, first: now, last: now, gen: m.gen, attempts: 1,
		inFlight: true, wait: Mono(m.cfg.RetryWait)}
	m.writes = append(m.writes, w)
	return w, Write{ID: w.id, Kind: kind, Attempt: 1, Entry: e, Rev: rev}
}

// again schedules another attempt of a claim or release whose attempt
// failed or went unanswered. A renewal is not retried: the next one
// carries a new number and is sent over the newest revision known.
func (m *Member) again(now Mono, w *write) []Action {
	switch w.kind {
	case KindRenew:
		return nil
	case KindClaim:
		if m.to == nil || m.to.write != w.id {
			return nil // its takeover ended: kept only to be recognised if it landed
		}
	case KindRelease:
		if !m.releasing || m.release == 0 {
			return nil
		}
	}
	w.retryAt = now + w.wait
	w.wait = min(2*w.wait, Mono(MaxRetryWait))
	return nil
}

func (m *Member) retry(now Mono, w *write) Action {
	w.retryAt = 0
	w.attempts++
	w.last = now
	w.inFlight = true
	return Write{ID: w.id, Kind: w.kind, Attempt: w.attempts, Entry: w.entry, Rev: w.rev}
}

// landed settles a write that is in the bucket at revision rev.
func (m *Member) landed(now Mono, w *write, rev uint64) []Action {
	m.drop(w)
	w.settled = true
	from := w.first
	if m.cfg.Bugs.LeaseFromRetry {
		from = w.last
	}
	e := w.entry
	e.Revision = rev
	var acts []Action
	if rev > m.cur.Revision {
		m.cur, m.have, m.curAt = e, true, now
		acts = m.noteClaims()
	}
	switch w.kind {
	case KindClaim:
		if rev < m.cur.Revision || (m.role == Primary && m.mine.Epoch >= e.Epoch) {
			// Overwritten since, or already known: nothing to take.
			return acts
		}
		return append(acts, m.promote(now, w, e, from)...)
	case KindRenew:
		if m.role != Primary || e.Epoch != m.mine.Epoch {
			return acts
		}
		if rev > m.mine.Revision {
			m.mine = e
		}
		if from > m.leaseFrom {
			m.leaseFrom = from
		}
		if w.gen == m.gen {
			m.fresh = true
		}
		return acts
	case KindRelease:
		if m.role != Primary || e.Epoch != m.mine.Epoch {
			return acts
		}
		m.mine = e
		m.released = e.Epoch
		acts = append(acts, m.demote(nil)...)
		if op := m.release; op != 0 {
			m.release = 0
			acts = append(acts, Done{Op: op})
		}
		return acts
	}
	return acts
}

// renew sends a renewal over the newest revision of this member's.
func (m *Member) renew(now Mono) Action {
	e := m.mine
	m.renewals = max(m.renewals, e.Renewals) + 1
	e.Renewals = m.renewals
	e.Revision = 0
	w, a := m.send(now, KindRenew, e, m.mine.Revision)
	m.renewing = w.id
	m.nextRenew = now.Add(m.cfg.RenewEvery)
	return a
}

// demote leaves the primary role.
func (m *Member) demote(err error) []Action {
	if m.role != Primary {
		return nil
	}
	m.role, m.releasing, m.fresh = Backup, false, false
	m.writes = slices.DeleteFunc(m.writes, func(w *write) bool { return w.kind != KindClaim })
	m.renewing = 0
	acts := []Action{Demote{Err: err}}
	if op := m.release; op != 0 {
		m.release = 0
		acts = append(acts, Done{Op: op, Err: err})
	}
	return acts
}

// Release hands the group over gracefully: the lease stops being valid at
// once, the entry is written released, and backups claim without waiting
// out the lease. The caller has drained in-flight requests first. Done
// reports op once the release has landed (Err nil), or the group was lost
// meanwhile.
func (m *Member) Release(now Mono, op OpID) []Action {
	if m.role != Primary {
		return []Action{Done{Op: op, Err: ErrNotPrimary}}
	}
	if m.release != 0 {
		return []Action{Done{Op: op, Err: fmt.Errorf("%w: a release is under way", ErrNotPrimary)}}
	}
	m.releasing, m.release = true, op
	return []Action{m.releaseWrite(now)}
}

func (m *Member) releaseWrite(now Mono) Action {
	e := m.mine
	m.renewals = max(m.renewals, e.Renewals) + 1
	e.Renewals, e.Released, e.Revision = m.renewals, true, 0
	_, a := m.send(now, KindRelease, e, m.mine.Revision)
	return a
}

// Cancel gives up on an operation: its caller no longer waits. A claim
// already sent may still land; the member then serves as primary.
func (m *Member) Cancel(now Mono, op OpID) []Action {
	if m.release == op && op != 0 {
		m.release = 0
		return []Action{Done{Op: op, Err: ErrCanceled}}
	}
	to := m.to
	if to == nil || !slices.Contains(to.ops, op) {
		return nil
	}
	to.ops = slices.DeleteFunc(to.ops, func(o OpID) bool { return o == op })
	acts := []Action{Done{Op: op, Err: ErrCanceled}}
	if len(to.ops) == 0 && len(to.signals) == 0 && to.phase < promoting {
		m.to = nil
	}
	return acts
}
