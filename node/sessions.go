package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
	"understudy/subscriber"
)

// session is one live session. Its mutex makes a session's requests run
// one at a time; different sessions run in parallel. A session keeps its
// object across demotions and promotions (the table is never swapped), so
// that a request still running from an earlier epoch and one of the new
// epoch never hold two objects of the same session.
type session struct {
	mu  sync.Mutex
	id  model.SessionID
	run *model.Run // nil until loaded
	// epoch is the epoch run is the truth at: the epoch it was loaded at,
	// or the epoch its newest interaction was applied and published at.
	// A session whose epoch is not the node's current epoch is loaded
	// again from the copy before it is used: its memory may hold a
	// snapshot the newer claim fences.
	epoch    uint64
	last     time.Time // last interaction or view
	finished time.Time // when the application finished
	gone     bool      // removed from the table: look the id up again
}

// table holds the live sessions of a primary, and remembers the last
// sessions it ended.
type table struct {
	mu    sync.Mutex
	m     map[model.SessionID]*session
	ended endedSet
}

func newTable() *table {
	return &table{m: map[model.SessionID]*session{}, ended: newEndedSet(maxEnded)}
}

// maxEnded bounds the ended sessions a node remembers: enough to outlast
// its own subscriber's lag by far (it drops a session when the tombstone
// arrives), little memory (about 60 bytes each).
const maxEnded = 10_000

// endedSet remembers the last max ids, first in first out.
type endedSet struct {
	max  int
	ids  map[model.SessionID]struct{}
	ring []model.SessionID
	head int
}

func newEndedSet(max int) endedSet {
	return endedSet{max: max, ids: map[model.SessionID]struct{}{}}
}

func (e *endedSet) add(id model.SessionID) {
	if _, ok := e.ids[id]; ok {
		return
	}
	if len(e.ring) < e.max {
		e.ring = append(e.ring, id)
	} else {
		delete(e.ids, e.ring[e.head])
		e.ring[e.head] = id
		e.head = (e.head + 1) % e.max
	}
	e.ids[id] = struct{}{}
}

func (e *endedSet) has(id model.SessionID) bool {
	_, ok := e.ids[id]
	return ok
}

// get returns the session of id, creating an empty entry when create is set.
func (t *table) get(id model.SessionID, create bool) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[id]
	if !ok && create {
		s = &session{id: id}
		t.m[id] = s
	}
	return s
}

// remove drops a session; the caller holds s.mu.
func (t *table) remove(s *session) {
	t.mu.Lock()
	if t.m[s.id] == s {
		delete(t.m, s.id)
	}
	t.mu.Unlock()
	s.gone = true
}

// end drops a session that ended and remembers it ended; the caller
// holds s.mu.
func (t *table) end(s *session) {
	t.mu.Lock()
	t.ended.add(s.id)
	t.mu.Unlock()
	t.remove(s)
}

func (t *table) hasEnded(id model.SessionID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended.has(id)
}

func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *table) all() []*session {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*session, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, s)
	}
	return out
}

// release drops, one at a time and waiting for each one's request in
// flight, every session whose memory is not the truth at epoch (0: all of
// them): what a node that is no longer the primary holds in memory. keep
// is asked again under each lock, since the node may be promoted
// meanwhile.
func (t *table) release(keep func(*session) bool) int {
	dropped := 0
	for _, s := range t.all() {
		s.mu.Lock()
		if !s.gone && !keep(s) {
			t.remove(s)
			dropped++
		}
		s.mu.Unlock()
	}
	return dropped
}

// Errors of acquire.
var (
	// errNoSession: the stream holds no live session of this id.
	errNoSession = errors.New("no such session")
	// errEnded: the session ended here (finished, idle or erased); its
	// id is not given to a new session.
	errEnded = fmt.Errorf("%w: it ended", errNoSession)
	// errStreamUnread: the session's newest snapshot had to be read from
	// the stream and the read failed for a reason that may pass (no
	// leader, a timeout): nothing was applied, the request may be sent
	// again (503 broker, which the gateway retries).
	errStreamUnread = errors.New("the stream could not be read")
	// errQuarantined: the session's newest snapshot cannot be restored: it
	// does not open, decode or fit the registered applications. Its user
	// gets a page that says so; the session needs an operator.
	errQuarantined = errors.New("session quarantined")
)

// acquire returns the session of id locked, loaded from memory or, after a
// takeover, from the held snapshot or the stream. It returns errNoSession
// when the session does not exist (or ended). expected says the client
// holds the session from an earlier answer (a cookie with a page's
// sequence), so that a primary looks for it in the stream before saying
// it does not exist (see adopt). The caller unlocks s.mu.
func (n *Node) acquire(ctx context.Context, id model.SessionID, expected bool) (*session, error) {
	for {
		s := n.sessions.get(id, true)
		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			continue
		}
		epoch := n.epoch.Load()
		if s.run != nil && s.epoch == epoch {
			return s, nil
		}
		// Not loaded, or loaded at an epoch that is over: the copy is the
		// truth now.
		if n.sessions.hasEnded(id) {
			// Its tombstone may not have reached this node's subscriber yet:
			// the copy it holds must not bring it back.
			n.sessions.remove(s)
			s.mu.Unlock()
			return nil, errEnded
		}
		run, stored, err := n.adopt(ctx, id, expected)
		if err != nil {
			n.sessions.remove(s)
			s.mu.Unlock()
			return nil, err
		}
		// Its last use is its last interaction, not this adoption: a
		// failover must not restart every session's idle time, nor a
		// finished session's linger (frequent failovers kept every
		// session alive for ever).
		s.run, s.epoch, s.last = run, epoch, stored
		if run.Finished() && s.finished.IsZero() {
			s.finished = stored
		}
		return s, nil
	}
}

// adopt materializes a session this node took over: from its copy of the
// stream (hot) or from the stream itself (cold), and returns when its
// snapshot was stored (now, if the copy does not know). expected: see
// acquire.
func (n *Node) adopt(ctx context.Context, id model.SessionID, expected bool) (*model.Run, time.Time, error) {
	var st snapshot.Stored
	var err error
	if n.sub != nil {
		// A hot node drained its copy of the stream before it claimed, and
		// every session written since is its own: what it does not hold
		// does not exist.
		// Fenced never means absent: a copy whose newest message of the
		// session is fenced (a zombie's snapshot that landed above the
		// fence, before the claim was heard of) sends the read to the
		// stream leader.
		var held subscriber.Held
		st, held = n.sub.Lookup(id)
		switch held {
		case subscriber.Absent:
			if !expected || !n.sub.Paused() || n.cfg.Bugs.PausedCopyNoOwn {
				return nil, time.Time{}, errNoSession
			}
			// A primary's paused copy holds what it drained before its
			// claim and what it stored since; a session someone else put
			// in the stream meanwhile (replay import) is only in the
			// stream. Only a session a client says it has is looked for:
			// a new session's id is not.
			if st, err = n.readLatest(ctx, id); err != nil {
				return nil, time.Time{}, err
			}
			n.sub.Take(st)
		case subscriber.Ended:
			return nil, time.Time{}, errEnded
		case subscriber.Quarantined:
			return nil, time.Time{}, n.quarantine(id, 0, n.sub.QuarantineOf(id))
		case subscriber.MustRead:
			n.met.readsUnderFence.Inc()
			if st, err = n.readLatest(ctx, id); err != nil {
				return nil, time.Time{}, err
			}
			n.sub.Take(st)
		}
	} else {
		// A cold standby reads the newest valid snapshot from the leader.
		if st, err = n.readLatest(ctx, id); err != nil {
			return nil, time.Time{}, err
		}
	}
	if st.Tombstone {
		return nil, time.Time{}, errEnded
	}
	run, err := n.materialize(ctx, st)
	if err != nil {
		if unrestorable(err) {
			return nil, time.Time{}, n.quarantine(id, st.StreamSeq, err)
		}
		n.log.Error("cannot restore session", "session", id, "stream_seq", st.StreamSeq, "err", err)
		return nil, time.Time{}, err
	}
	if n.pub != nil {
		n.pub.Track(id, st.StreamSeq)
	}
	stored := st.Time
	if stored.IsZero() || stored.After(time.Now()) {
		stored = time.Now()
	}
	return run, stored, nil
}

// readLatest reads the newest valid snapshot of session id from the stream
// leader, for a cold standby or a copy that cannot say.
func (n *Node) readLatest(ctx context.Context, id model.SessionID) (snapshot.Stored, error) {
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	st, err := n.reader.ReadLatest(rctx, id)
	switch {
	case errors.Is(err, subscriber.ErrEnded):
		return st, errEnded
	case errors.Is(err, snapshot.ErrNotFound):
		return st, errNoSession
	case errors.Is(err, snapshot.ErrBadMessage), errors.Is(err, snapshot.ErrHistoryLost):
		return st, n.quarantine(id, st.StreamSeq, err)
	case err != nil:
		return st, fmt.Errorf("session %s: read the newest snapshot: %w: %w", id, errStreamUnread, err)
	}
	return st, nil
}

// readTimeout bounds a read from the stream leader made for a request.
const readTimeout = 5 * time.Second

// quarantine reports a session whose snapshot cannot be restored. The
// error names the session and says what is wrong; it never carries
// payload bytes.
func (n *Node) quarantine(id model.SessionID, streamSeq uint64, err error) error {
	n.met.quarantine(id, err)
	n.log.Error("session quarantined: its snapshot cannot be restored", "session", id, "stream_seq", streamSeq, "err", err)
	return fmt.Errorf("session %s: %w: %w", id, errQuarantined, err)
}

// unrestorable reports a materialize error that is about the snapshot
// itself, so that trying again cannot help: it does not open or decode, or
// does not fit the registered applications. An entity that cannot be
// resolved, or a database that does not answer, may be fixed: not these.
func unrestorable(err error) bool {
	var de *cbor.DecodeError
	switch {
	case errors.As(err, &de), errors.Is(err, snapshot.ErrSealed), errors.Is(err, snapshot.ErrBadMessage),
		errors.Is(err, model.ErrUnknownApp), errors.Is(err, model.ErrUnknownVersion), errors.Is(err, model.ErrUnknownStep),
		errors.Is(err, model.ErrCorruptSession), errors.Is(err, model.ErrLimit), errors.Is(err, model.ErrBadSessionID):
		return true
	}
	return false
}

func (n *Node) materialize(ctx context.Context, st snapshot.Stored) (*model.Run, error) {
	run, err := snapshot.Restore(ctx, n.eng, n.cfg.Sealer, st)
	if err != nil {
		return nil, err
	}
	for _, stale := range run.Stale() {
		n.log.Warn("entity changed since the snapshot", "session", st.Session, "step", stale.Path, "param", stale.Param,
			"old", stale.Old.String(), "new", stale.New.String(), "action", staleAction(stale.Action))
	}
	return run, nil
}

// adoptYield bounds how long adoption gives way to requests in flight
// before each session: under a steady load it still goes on, at a few
// hundred sessions a second.
const adoptYield = 5 * time.Millisecond

func staleAction(a model.StaleRule) string {
	if a == model.Reselect {
		return "reselect"
	}
	return "reload"
}

// adoptAll materializes every held session in the background after a
// promotion, so that first requests find them ready. Requests come first:
// while any is in flight, adoption pauses before each session (up to
// adoptYield), since a request materializes its own session anyway.
func (n *Node) adoptAll(ctx context.Context, epoch uint64) {
	if n.sub == nil {
		return
	}
	start := time.Now()
	var ids []model.SessionID
	n.sub.Range(func(st snapshot.Stored) bool {
		ids = append(ids, st.Session)
		return true
	})
	done := 0
	for _, id := range ids {
		if ctx.Err() != nil || n.epoch.Load() != epoch || !n.serving.Load() {
			return // demoted or promoted again meanwhile
		}
		for waited := time.Duration(0); n.admit.inFlight() > 0 && waited < adoptYield; waited += time.Millisecond {
			time.Sleep(time.Millisecond)
		}
		s, err := n.acquire(ctx, id, false)
		if err != nil {
			continue
		}
		s.mu.Unlock()
		done++
	}
	n.log.Info("sessions materialized after promotion", "sessions", done, "of", len(ids), "took", time.Since(start))
}

// sweep ends idle and finished sessions with a tombstone, then purges
// ended sessions whose retention has passed, for at most a period.
func (n *Node) sweep(ctx context.Context) {
	every := min(n.cfg.Idle, n.cfg.FinishedLinger) / 4
	if n.cfg.Retention > 0 {
		every = min(every, n.cfg.Retention/4)
	}
	every = max(every, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.sweepNow:
		}
		now := time.Now()
		// A node ends sessions only while it holds the lease: a zombie's
		// tombstones would be fenced, and its view of idleness is stale.
		if n.sweepStopped() {
			if dropped := n.purges.forget(now.Add(-purgeForget)); dropped > 0 {
				n.log.Debug("purges left to the primary forgotten", "sessions", dropped)
			}
			continue
		}
		epoch := n.epoch.Load()
		n.sweepHeld(ctx, now)
		inParallel(ctx, n.sessions.all(), n.sweepStopped, func(s *session) {
			if !s.mu.TryLock() {
				return // busy: not idle
			}
			defer s.mu.Unlock()
			if s.gone || s.run == nil || s.epoch != epoch {
				return
			}
			idle := now.Sub(s.last) > n.cfg.Idle
			done := !s.finished.IsZero() && now.Sub(s.finished) > n.cfg.FinishedLinger
			if idle || done {
				n.end(ctx, s, map[bool]string{true: "idle", false: "finished"}[idle])
			}
		})
		n.runPurges(ctx, now, every)
	}
}

// kickSweep makes the sweep run now rather than at its next tick.
func (n *Node) kickSweep() {
	select {
	case n.sweepNow <- struct{}{}:
	default:
	}
}

// sweepWorkers bounds the sessions a sweep ends at once. One
// at a time, a primary ended a few hundred sessions a minute (a
// tombstone's publish waits for its ack): after failovers every few
// seconds, with thousands of new sessions a minute, the finished ones
// piled up until the cap turned new ones away.
const sweepWorkers = 8

// sweepStopped says whether a sweep must stop: this node no longer holds
// a valid lease, or is handing over or shutting down.
func (n *Node) sweepStopped() bool { return !n.serving.Load() || n.draining.Load() || !n.leaseValid() }

// inParallel calls fn with each item, sweepWorkers at a time, until ctx
// ends or stop says so, and returns when every call has.
func inParallel[T any](ctx context.Context, items []T, stop func() bool, fn func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range min(sweepWorkers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				fn(it)
			}
		}()
	}
	for _, it := range items {
		if ctx.Err() != nil || stop() {
			break
		}
		work <- it
	}
	close(work)
	wg.Wait()
}

// sweepHeld ends the sessions held in the copy that were never adopted,
// as sweep ends those in memory: idle longer than Idle, or finished
// longer than FinishedLinger ago (the snapshot's Finished header picks
// them; the session's own state decides). A backup's sessions that nobody
// came back to after a failover, or that finished on the old primary,
// would otherwise live, and count toward the cap, for ever, or for the
// idle time: adoption after a promotion gives way to requests and may not
// reach them before the next failover (a long chaos run with a failover
// every few seconds filled the cap of 100,000 sessions).
func (n *Node) sweepHeld(ctx context.Context, now time.Time) {
	if n.sub == nil {
		return
	}
	due := func(st snapshot.Stored, finished bool) bool {
		age := now.Sub(st.Time)
		return !st.Time.IsZero() && (age > n.cfg.Idle || finished && age > n.cfg.FinishedLinger)
	}
	var ids []model.SessionID
	n.sub.Range(func(st snapshot.Stored) bool {
		if due(st, st.Finished) && n.sessions.get(st.Session, false) == nil {
			ids = append(ids, st.Session)
		}
		return true
	})
	inParallel(ctx, ids, n.sweepStopped, func(id model.SessionID) {
		s, err := n.acquire(ctx, id, false)
		if err != nil {
			return
		}
		defer s.mu.Unlock()
		// Adopted just now: its last use is the snapshot's time.
		if st, held := n.sub.Lookup(id); held == subscriber.Valid && due(st, s.run.Finished()) {
			why := "idle"
			if s.run.Finished() && now.Sub(st.Time) <= n.cfg.Idle {
				why = "finished"
			}
			n.end(ctx, s, why)
		}
	})
}

// end publishes a session's tombstone and forgets it. The caller holds s.mu.
func (n *Node) end(ctx context.Context, s *session, why string) {
	if n.cfg.Replication != Off {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ack, err := n.pub.End(ectx, s.id, s.epoch, s.run.Seq())
		cancel()
		if err != nil {
			n.log.Warn("cannot end session", "session", s.id, "why", why, "err", err)
			return
		}
		n.schedulePurge(s.id, ack.StreamSeq, time.Now(), s.epoch)
	}
	n.sessions.end(s)
	n.met.ended.WithLabelValues(why).Inc()
	n.log.Info("session ended", "session", s.id, "why", why, "seq", s.run.Seq())
}
