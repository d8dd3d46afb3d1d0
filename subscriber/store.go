package subscriber

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"understudy/internal/bugs"
	"understudy/model"
	"understudy/snapshot"
)

// store holds the newest valid snapshot of every session: what a backup
// keeps. It is the Subscriber's pure core: no I/O, no clock, no goroutines,
// no locks. The Subscriber serializes calls to it and makes the reads from
// the stream it asks for (fencedGap), so the rules below can be tested by
// feeding it messages in any order.
//
// The rules, for a message of session s at stream sequence q:
//
//   - q not above what is known of s (the held snapshot's sequence, or the
//     tombstone's if s ended): older history or a redelivery, ignored;
//   - fenced: ignored; if the message below it (Meta.Prev) was never seen,
//     the newest valid snapshot may be one this store has not got (a
//     catch-up delivers only each session's newest message), so the store
//     asks for a read (fencedGap);
//   - a tombstone: s is dropped and its tombstone's sequence remembered;
//   - a snapshot: held, replacing the older one;
//   - invalid: s is quarantined at q (older snapshot kept), until a valid
//     message above q arrives.
//
// Since every rule compares stream sequences and nothing depends on
// arrival order, any order of delivery with any duplicates ends with the
// same store: the newest valid snapshot of every live session, and a
// quarantine on exactly the sessions whose newest message is invalid.
// (The one bound: only the last MaxEnded tombstones are remembered; see
// endedSet.)
type store struct {
	fence       snapshot.Fence
	bugs        bugs.Set
	sessions    map[model.SessionID]*entry
	quarantined map[model.SessionID]quarantine
	// unresolved holds, for sessions whose newest message is fenced and
	// whose newest valid snapshot could not be read yet (a timeout, no
	// leader), the fenced message's stream sequence: fenced never means
	// absent, so Lookup says the stream must be read.
	unresolved map[model.SessionID]uint64
	ended      endedSet
	nodes      interner
	held       int64 // payload bytes of sessions
	counts     counters
}

// entry is one held snapshot: its payload and the few fields of its meta
// that a promotion needs. 96 bytes; the payload is a slice of exactly its
// length, never the NATS message's buffer (which also holds the headers).
// A held payload is never written to, so a Stored handed out stays valid
// after the entry is updated.
type entry struct {
	data      []byte
	node      string // interned: there are few nodes
	key       string // the sealing key's id, interned; "" if not sealed
	seq       uint64 // interaction sequence
	epoch     uint64
	streamSeq uint64
	stored    int64 // when the stream stored it, Unix nanoseconds; 0 if unknown
	format    uint32
	finished  bool // the snapshot says its application had finished (Meta.Finished)
}

type quarantine struct {
	err       error
	streamSeq uint64 // the message that caused it; a valid one above clears it
}

// counters count what happened to messages, for Stats.
type counters struct {
	applied, tombstones, older, fenced, quarantines, badSubjects, reads uint64
}

// outcome says what the store did with a message.
type outcome uint8

const (
	applied     outcome = iota // now held as the session's newest snapshot
	ended                      // a tombstone: the session was dropped
	older                      // not above what is known of the session: ignored
	fenced                     // written by a primary that had lost the group: ignored
	fencedGap                  // fenced, over a message never seen: read the newest valid snapshot
	quarantined                // invalid: the session is quarantined
	badSubject                 // not on a session subject: counted only
	dropped                    // Refence found no valid snapshot: the session was dropped
	unresolved                 // a read for a fenced message failed for a passing reason: to be read again
)

func newStore(fence snapshot.Fence, maxEnded int, planted bugs.Set) *store {
	if fence == nil {
		fence = snapshot.NoFence{}
	}
	return &store{
		fence:       fence,
		bugs:        planted,
		sessions:    make(map[model.SessionID]*entry),
		quarantined: make(map[model.SessionID]quarantine),
		unresolved:  make(map[model.SessionID]uint64),
		ended:       newEndedSet(maxEnded),
		nodes:       interner{m: make(map[string]string)},
	}
}

// apply takes one message from the stream: its meta and payload, and the
// error snapshot.ParseMeta (or FromRaw) returned for it. For a quarantine
// it returns the session's error.
func (s *store) apply(m snapshot.Meta, data []byte, err error) (outcome, error) {
	if err != nil {
		if m.Session == "" {
			s.counts.badSubjects++
			return badSubject, err
		}
		return s.quarantine(m.Session, m.StreamSeq, err)
	}
	id := m.Session
	e := s.sessions[id]
	if m.StreamSeq <= s.seen(id, e) {
		s.counts.older++
		return older, nil
	}
	if s.fence.Fenced(m.Epoch, m.StreamSeq) {
		s.counts.fenced++
		if m.Prev > s.known(id, e) {
			return fencedGap, nil
		}
		return fenced, nil
	}
	if m.Tombstone {
		s.end(id, e, m.StreamSeq, m.Epoch)
		return ended, nil
	}
	s.put(id, e, m, data)
	s.counts.applied++
	return applied, nil
}

// applyRead takes the result of snapshot.Latest for session id, read
// because of a fenced message at stream sequence under (apply returned
// fencedGap).
func (s *store) applyRead(id model.SessionID, under uint64, st snapshot.Stored, err error) (outcome, error) {
	s.counts.reads++
	return s.takeRead(id, under, st, err)
}

func (s *store) takeRead(id model.SessionID, under uint64, st snapshot.Stored, err error) (outcome, error) {
	switch {
	case err == nil && st.Session != id:
		return s.quarantine(id, under, fmt.Errorf("session %s: read under fenced stream seq %d returned session %s: %w", id, under, st.Session, snapshot.ErrBadMessage))
	case err == nil:
		return s.apply(st.Meta, st.Data, nil)
	case errors.Is(err, snapshot.ErrNotFound):
		// Only fenced snapshots: there is nothing valid to hold.
		delete(s.unresolved, id)
		return fenced, nil
	case errors.Is(err, snapshot.ErrBadMessage) && st.Session == id && st.StreamSeq != 0:
		return s.quarantine(id, st.StreamSeq, err)
	case transient(err) && !s.bugs.QuarantineTransient:
		// A timeout or no leader says nothing of the session: it stays
		// to be read again, and meanwhile Lookup sends readers to the
		// stream.
		s.markUnresolved(id, under)
		return unresolved, err
	default:
		return s.quarantine(id, under, fmt.Errorf("%w (reading under fenced stream seq %d)", err, under))
	}
}

// markUnresolved records that session id's newest message, at streamSeq,
// is fenced and what is below it could not be read yet.
func (s *store) markUnresolved(id model.SessionID, streamSeq uint64) {
	if streamSeq <= s.seen(id, s.sessions[id]) || streamSeq <= s.unresolved[id] {
		return
	}
	if _, ok := s.unresolved[id]; ok {
		s.unresolved[id] = streamSeq
		return
	}
	s.unresolved[model.SessionID(strings.Clone(string(id)))] = streamSeq
}

// clearUnresolved forgets id's unresolved read once a valid message at
// streamSeq or above it is taken.
func (s *store) clearUnresolved(id model.SessionID, streamSeq uint64) {
	if u, ok := s.unresolved[id]; ok && u <= streamSeq {
		delete(s.unresolved, id)
	}
}

// transient reports the error of a read that may succeed if tried again,
// not one that says what the stream holds.
func transient(err error) bool {
	return err != nil && !errors.Is(err, snapshot.ErrNotFound) && !errors.Is(err, snapshot.ErrBadMessage) && !errors.Is(err, snapshot.ErrHistoryLost)
}

// ref names what the store took from a message: a session and the stream
// sequence of its held snapshot, or of its tombstone if ended.
type ref struct {
	id        model.SessionID
	streamSeq uint64
	ended     bool
}

// fencedHeld returns the held snapshots and remembered tombstones that the
// fence now rejects: a claim the backup heard of late fences messages it
// took before. (A tombstone the ended set has forgotten cannot be judged
// again; see endedSet.)
func (s *store) fencedHeld() []ref {
	var refs []ref
	for id, e := range s.sessions {
		if s.fence.Fenced(e.epoch, e.streamSeq) {
			refs = append(refs, ref{id, e.streamSeq, false})
		}
	}
	for id, t := range s.ended.seqs {
		if s.fence.Fenced(t.epoch, t.seq) {
			refs = append(refs, ref{id, t.seq, true})
		}
	}
	return refs
}

// replace takes the result of snapshot.Latest for r, a held snapshot or a
// tombstone that the fence now rejects (fencedHeld). Unlike apply it may go
// back to an older stream sequence: that is the point. If the session
// changed since r was taken, the newer message was judged by the new fence
// already and the read is ignored. The caller keeps r when the read failed
// for a reason that may pass (a timeout): Get and Range skip a fenced
// snapshot meanwhile.
func (s *store) replace(r ref, st snapshot.Stored, err error) (outcome, error) {
	s.counts.reads++
	e := s.sessions[r.id]
	if r.ended {
		if e != nil || s.ended.get(r.id) != r.streamSeq {
			return older, nil
		}
		// The session did not end: what the read found is its state.
		s.ended.forget(r.id)
		return s.takeRead(r.id, r.streamSeq, st, err)
	}
	if e == nil || e.streamSeq != r.streamSeq {
		return older, nil
	}
	switch {
	case err == nil && st.Session == r.id && !s.fence.Fenced(st.Epoch, st.StreamSeq):
		if st.Tombstone {
			s.end(r.id, e, st.StreamSeq, st.Epoch)
			return ended, nil
		}
		s.put(r.id, e, st.Meta, st.Data)
		s.counts.applied++
		return applied, nil
	case err == nil:
		err = fmt.Errorf("session %s: read of fenced stream seq %d returned session %s epoch %d stream seq %d: %w",
			r.id, r.streamSeq, st.Session, st.Epoch, st.StreamSeq, snapshot.ErrBadMessage)
	case errors.Is(err, snapshot.ErrNotFound):
		s.drop(r.id, e)
		return dropped, nil
	}
	// The fenced snapshot must go, and what is below it cannot be had.
	s.drop(r.id, e)
	return s.quarantine(r.id, r.streamSeq, err)
}

// quarantine marks session id as quarantined by a message at streamSeq,
// unless something newer is known.
func (s *store) quarantine(id model.SessionID, streamSeq uint64, err error) (outcome, error) {
	if streamSeq <= s.seen(id, s.sessions[id]) {
		s.counts.older++
		return older, nil
	}
	if q, ok := s.quarantined[id]; ok && q.streamSeq >= streamSeq {
		s.counts.older++
		return older, nil
	}
	qerr := fmt.Errorf("%w: %w", ErrQuarantined, err)
	if _, ok := s.quarantined[id]; ok {
		s.quarantined[id] = quarantine{qerr, streamSeq}
	} else {
		s.quarantined[model.SessionID(strings.Clone(string(id)))] = quarantine{qerr, streamSeq}
	}
	s.counts.quarantines++
	return quarantined, qerr
}

// seen returns the newest stream sequence a valid message of id had: the
// held snapshot's or the tombstone's.
func (s *store) seen(id model.SessionID, e *entry) uint64 {
	seq := s.ended.get(id)
	if e != nil {
		seq = max(seq, e.streamSeq)
	}
	return seq
}

// known is seen, or the message that quarantined id if newer.
func (s *store) known(id model.SessionID, e *entry) uint64 {
	seq := s.seen(id, e)
	if q, ok := s.quarantined[id]; ok {
		seq = max(seq, q.streamSeq)
	}
	return seq
}

// put holds m as session id's snapshot; e is the entry held now, or nil.
func (s *store) put(id model.SessionID, e *entry, m snapshot.Meta, data []byte) {
	// An exact-size copy: the message's buffer also holds its headers, and
	// the caller's slice may be reused.
	d := make([]byte, len(data))
	copy(d, data)
	var stored int64
	if !m.Time.IsZero() {
		stored = m.Time.UnixNano()
	}
	if e == nil {
		e = new(entry)
		// The id is usually a slice of the message's subject: clone it so
		// the map key does not keep the subject alive.
		s.sessions[model.SessionID(strings.Clone(string(id)))] = e
		s.ended.forget(id)
	} else {
		// Updated in place: assigning to an existing string key would
		// replace the key with m's, which points into the subject.
		s.held -= int64(len(e.data))
	}
	*e = entry{data: d, node: s.nodes.intern(m.Node), key: s.nodes.intern(m.Key), seq: m.Seq, epoch: m.Epoch, streamSeq: m.StreamSeq, stored: stored, format: uint32(m.Format), finished: m.Finished}
	s.held += int64(len(d))
	s.clearQuarantine(id, m.StreamSeq)
	s.clearUnresolved(id, m.StreamSeq)
}

// end drops session id for its tombstone at streamSeq, written at epoch.
func (s *store) end(id model.SessionID, e *entry, streamSeq, epoch uint64) {
	s.drop(id, e)
	s.ended.add(id, streamSeq, epoch)
	s.clearQuarantine(id, streamSeq)
	s.clearUnresolved(id, streamSeq)
	s.counts.tombstones++
}

func (s *store) drop(id model.SessionID, e *entry) {
	if e != nil {
		s.held -= int64(len(e.data))
		delete(s.sessions, id)
	}
}

// clearQuarantine lifts id's quarantine if a valid message at streamSeq
// is newer than the one that caused it.
func (s *store) clearQuarantine(id model.SessionID, streamSeq uint64) {
	if q, ok := s.quarantined[id]; ok && q.streamSeq < streamSeq {
		delete(s.quarantined, id)
	}
}

// get returns id's held snapshot, unless the fence rejects it (it waits
// for Refence to replace it).
func (s *store) get(id model.SessionID) (snapshot.Stored, bool) {
	e := s.sessions[id]
	if e == nil {
		return snapshot.Stored{}, false
	}
	return s.stored(id, e)
}

// Held says what a backup's copy holds of a session.
type Held uint8

const (
	// Absent: nothing. No valid message of the session was taken, or
	// its tombstone was, long enough ago to be forgotten.
	Absent Held = iota
	// Valid: the session's newest valid snapshot.
	Valid
	// MustRead: the copy cannot say. Its newest message of the session is
	// fenced (a claim heard of after it was taken) or sits on a gap that
	// could not be read yet; the newest valid snapshot must be read from
	// the stream leader before anything is answered for the session.
	// Fenced never means absent.
	MustRead
	// Ended: the session's tombstone.
	Ended
	// Quarantined: the session's newest message cannot be restored.
	Quarantined
)

func (h Held) String() string {
	return [...]string{"absent", "valid", "must read", "ended", "quarantined"}[h]
}

// lookup says what the copy holds of session id, and returns its
// snapshot when that is Valid.
func (s *store) lookup(id model.SessionID) (snapshot.Stored, Held) {
	if _, ok := s.quarantined[id]; ok {
		return snapshot.Stored{}, Quarantined
	}
	e := s.sessions[id]
	u, unsure := s.unresolved[id]
	switch {
	case e != nil && !unsure || e != nil && u <= e.streamSeq:
		if st, ok := s.stored(id, e); ok {
			return st, Valid
		}
		if s.bugs.FencedIsAbsent {
			return snapshot.Stored{}, Absent
		}
		return snapshot.Stored{}, MustRead
	case unsure:
		if s.bugs.FencedIsAbsent {
			return snapshot.Stored{}, Absent
		}
		return snapshot.Stored{}, MustRead
	case s.ended.get(id) != 0:
		return snapshot.Stored{}, Ended
	}
	return snapshot.Stored{}, Absent
}

// stored returns e as a snapshot.Stored. Meta.Prev is not kept: it is
// zero.
func (s *store) stored(id model.SessionID, e *entry) (snapshot.Stored, bool) {
	if s.fence.Fenced(e.epoch, e.streamSeq) {
		return snapshot.Stored{}, false
	}
	var t time.Time
	if e.stored != 0 {
		t = time.Unix(0, e.stored).UTC()
	}
	return snapshot.Stored{
		Meta: snapshot.Meta{
			Session:   id,
			Epoch:     e.epoch,
			Seq:       e.seq,
			Node:      e.node,
			Format:    uint64(e.format),
			Finished:  e.finished,
			Key:       e.key,
			StreamSeq: e.streamSeq,
			Time:      t,
			Size:      len(e.data),
		},
		Data: e.data,
	}, true
}

// quarantines returns a copy of the quarantined sessions' errors.
func (s *store) quarantines() map[model.SessionID]error {
	out := make(map[model.SessionID]error, len(s.quarantined))
	for id, q := range s.quarantined {
		out[id] = q.err
	}
	return out
}

// endedSet remembers the tombstones (stream sequence and epoch) of the
// last max ended sessions, so that an older snapshot of an ended session
// arriving later cannot bring it back, and so that Refence can judge a
// tombstone again when a claim it heard of late fences it.
//
// Why a bound is enough: the stream delivers in order, so an older message
// can only follow a session's tombstone through a read made out of order,
// one that started before the tombstone arrived (the read under a fenced
// snapshot at catch-up, Refence) or through a redelivery of old history.
// A tombstone needs to be remembered only while such reads may be in
// flight, not for ever, and a store of 100,000 sessions that end one by
// one must not grow by 100,000 records.
//
// It costs about 100 bytes a session: a map slot, a ring slot, the id.
type endedSet struct {
	max  int
	seqs map[model.SessionID]tombstone
	ring []endedRecord // insertion order; once full, ring[head] is the oldest
	head int
}

type tombstone struct{ seq, epoch uint64 }

type endedRecord struct {
	id  model.SessionID
	seq uint64
}

func newEndedSet(max int) endedSet {
	return endedSet{max: max, seqs: make(map[model.SessionID]tombstone)}
}

// get returns id's tombstone's stream sequence, 0 if none is remembered.
func (e *endedSet) get(id model.SessionID) uint64 { return e.seqs[id].seq }

func (e *endedSet) len() int { return len(e.seqs) }

func (e *endedSet) add(id model.SessionID, seq, epoch uint64) {
	if e.max <= 0 {
		return
	}
	id = model.SessionID(strings.Clone(string(id)))
	rec := endedRecord{id, seq}
	if len(e.ring) < e.max {
		e.ring = append(e.ring, rec)
	} else {
		old := e.ring[e.head]
		// Forgotten or ended again since: the record is not old's.
		if e.seqs[old.id].seq == old.seq {
			delete(e.seqs, old.id)
		}
		e.ring[e.head] = rec
		e.head = (e.head + 1) % e.max
	}
	e.seqs[id] = tombstone{seq, epoch}
}

// forget drops id's record: a snapshot newer than its tombstone is held.
// The ring slot stays until it is overwritten.
func (e *endedSet) forget(id model.SessionID) {
	if len(e.seqs) > 0 {
		delete(e.seqs, id)
	}
}

// interner shares one copy of each node name among the entries. It stops
// adding names at maxInterned, so a stream full of made-up node names
// cannot grow it: the names are then copied per entry.
type interner struct{ m map[string]string }

const maxInterned = 1024

func (in *interner) intern(s string) string {
	if v, ok := in.m[s]; ok {
		return v
	}
	c := strings.Clone(s)
	if len(in.m) < maxInterned {
		in.m[c] = c
	}
	return c
}
