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
)

// session is one live session. Its mutex makes a session's requests run
// one at a time; different sessions run in parallel.
type session struct {
	mu       sync.Mutex
	id       model.SessionID
	run      *model.Run // nil until loaded
	last     time.Time  // last interaction or view
	finished time.Time  // when the application finished
	gone     bool       // removed from the table: look the id up again
}

// table holds the live sessions of a primary.
type table struct {
	mu sync.Mutex
	m  map[model.SessionID]*session
}

func newTable() *table { return &table{m: map[model.SessionID]*session{}} }

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

func (t *table) clear() {
	t.mu.Lock()
	old := t.m
	t.m = map[model.SessionID]*session{}
	t.mu.Unlock()
	for _, s := range old {
		s.mu.Lock()
		s.gone = true
		s.mu.Unlock()
	}
}

// errNoSession: the stream holds no live session of this id.
var errNoSession = errors.New("no such session")

// acquire returns the session of id locked, loaded from memory or, after a
// takeover, from the held snapshot or the stream. It returns errNoSession
// when the session does not exist (or ended). The caller unlocks s.mu.
func (n *Node) acquire(ctx context.Context, id model.SessionID) (*session, error) {
	for {
		s := n.sessions.get(id, true)
		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			continue
		}
		if s.run != nil {
			return s, nil
		}
		run, err := n.adopt(ctx, id)
		if err != nil {
			n.sessions.remove(s)
			s.mu.Unlock()
			return nil, err
		}
		s.run, s.last = run, time.Now()
		return s, nil
	}
}

// adopt materializes a session this node took over: from its copy of the
// stream (hot) or from the stream itself (cold).
func (n *Node) adopt(ctx context.Context, id model.SessionID) (*model.Run, error) {
	var st snapshot.Stored
	var err error
	if n.sub != nil {
		// A hot node drained its copy of the stream before it claimed, and
		// every session written since is its own: what it does not hold
		// does not exist.
		var ok bool
		if st, ok = n.sub.Get(id); !ok {
			return nil, errNoSession
		}
	} else {
		// A cold standby reads the newest valid snapshot from the leader.
		st, err = n.reader.ReadLatest(ctx, id)
		if errors.Is(err, snapshot.ErrNotFound) {
			return nil, errNoSession
		}
		if err != nil {
			return nil, err
		}
	}
	if st.Tombstone {
		return nil, errNoSession
	}
	run, err := n.materialize(ctx, st)
	if err != nil {
		n.met.quarantined.Inc()
		n.log.Error("cannot restore session", "session", id, "stream_seq", st.StreamSeq, "err", err)
		return nil, err
	}
	if n.pub != nil {
		n.pub.Track(id, st.StreamSeq)
	}
	return run, nil
}

func (n *Node) materialize(ctx context.Context, st snapshot.Stored) (*model.Run, error) {
	s, err := cbor.Decode(st.Data)
	if err != nil {
		return nil, err
	}
	if s.ID != st.Session {
		return nil, fmt.Errorf("session %s: snapshot is of session %s", st.Session, s.ID)
	}
	run, err := n.eng.Materialize(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, stale := range run.Stale() {
		n.log.Warn("entity changed since the snapshot", "session", st.Session, "step", stale.Path, "param", stale.Param,
			"old", stale.Old.String(), "new", stale.New.String(), "action", staleAction(stale.Action))
	}
	return run, nil
}

func staleAction(a model.StaleRule) string {
	if a == model.Reselect {
		return "reselect"
	}
	return "reload"
}

// adoptAll materializes every held session in the background after a
// promotion, so that first requests find them ready.
func (n *Node) adoptAll(epoch uint64) {
	if n.sub == nil {
		return
	}
	start := time.Now()
	var ids []model.SessionID
	n.sub.Range(func(st snapshot.Stored) bool {
		ids = append(ids, st.Session)
		return true
	})
	ctx := context.Background()
	done := 0
	for _, id := range ids {
		if n.epoch.Load() != epoch || !n.serving.Load() {
			return // demoted or promoted again meanwhile
		}
		s, err := n.acquire(ctx, id)
		if err != nil {
			continue
		}
		s.mu.Unlock()
		done++
	}
	n.log.Info("sessions materialized after promotion", "sessions", done, "of", len(ids), "took", time.Since(start))
}

// sweep ends idle and finished sessions with a tombstone.
func (n *Node) sweep(ctx context.Context) {
	every := min(n.cfg.Idle, n.cfg.FinishedLinger) / 4
	every = max(every, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.serving.Load() {
			continue
		}
		now := time.Now()
		for _, s := range n.sessions.all() {
			if !s.mu.TryLock() {
				continue // busy: not idle
			}
			if s.gone || s.run == nil {
				s.mu.Unlock()
				continue
			}
			idle := now.Sub(s.last) > n.cfg.Idle
			done := !s.finished.IsZero() && now.Sub(s.finished) > n.cfg.FinishedLinger
			if idle || done {
				n.end(ctx, s, map[bool]string{true: "idle", false: "finished"}[idle])
			}
			s.mu.Unlock()
		}
	}
}

// end publishes a session's tombstone and forgets it. The caller holds s.mu.
func (n *Node) end(ctx context.Context, s *session, why string) {
	if n.cfg.Replication != Off {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.pub.End(ectx, s.id, n.epoch.Load(), s.run.Seq())
		cancel()
		if err != nil {
			n.log.Warn("cannot end session", "session", s.id, "why", why, "err", err)
			return
		}
	}
	n.sessions.remove(s)
	n.met.ended.WithLabelValues(why).Inc()
	n.log.Info("session ended", "session", s.id, "why", why, "seq", s.run.Seq())
}
