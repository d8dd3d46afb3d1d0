package subscriber

import (
	"bytes"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"pgregory.net/rapid"

	"understudy/internal/bugs"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/snapshot"
)

// The store's property: whatever the order of delivery, with duplicates,
// with only part of the history delivered (a catch-up), with the fence
// changing midway (a claim, then Refence), it ends holding the newest valid
// snapshot of every live session.

// msg is one message of a generated stream; msgs[i] is at stream seq i+1.
type msg struct {
	meta       snapshot.Meta
	data       []byte
	bad        bool // fails validation
	badSubject bool // not on a session subject
}

type history struct {
	msgs   []msg
	claims snapshot.Claims
	ids    []model.SessionID
}

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// genHistory generates a stream written by a succession of primaries: at
// random points a new epoch claims the group with the stream's last
// sequence as its fence, and older epochs (primaries that have not noticed)
// may go on writing. Messages are snapshots, tombstones, invalid messages
// and, rarely, messages on a subject that is not a session's.
func genHistory(t *rapid.T, withBad bool) history {
	var h history
	for i := range rapid.IntRange(1, 4).Draw(t, "sessions") {
		h.ids = append(h.ids, modeltest.SessionID(i))
	}
	n := rapid.IntRange(1, 40).Draw(t, "messages")
	epoch := uint64(1)
	last := make(map[model.SessionID]uint64)
	seq := make(map[model.SessionID]uint64)
	for i := range n {
		streamSeq := uint64(i + 1)
		if rapid.IntRange(0, 7).Draw(t, "claim") == 0 {
			epoch++
			h.claims = append(h.claims, snapshot.Claim{Epoch: epoch, Fence: streamSeq - 1})
		}
		if withBad && rapid.IntRange(0, 19).Draw(t, "bad subject") == 0 {
			h.msgs = append(h.msgs, msg{meta: snapshot.Meta{StreamSeq: streamSeq}, badSubject: true})
			continue
		}
		id := rapid.SampledFrom(h.ids).Draw(t, "session")
		writer := epoch
		if epoch > 1 && rapid.IntRange(0, 2).Draw(t, "old primary") == 0 {
			writer = rapid.Uint64Range(1, epoch-1).Draw(t, "old epoch")
		}
		kind := rapid.IntRange(0, 9).Draw(t, "kind")
		seq[id]++
		m := snapshot.Meta{
			Session: id, Epoch: writer, Seq: seq[id], Node: fmt.Sprintf("n%d", writer), Format: 1,
			Prev: last[id], StreamSeq: streamSeq, Time: t0.Add(time.Duration(streamSeq) * time.Second),
			Tombstone: kind == 0,
		}
		var data []byte
		if !m.Tombstone {
			data = []byte(fmt.Sprintf("%s@%d", id, streamSeq))
		}
		m.Size = len(data)
		last[id] = streamSeq
		h.msgs = append(h.msgs, msg{meta: m, data: data, bad: withBad && kind == 1})
	}
	return h
}

// deliver hands message i to the store as the Subscriber does, reading
// from the "stream" when the store asks.
func (h history) deliver(s *store, i int) {
	m := h.msgs[i]
	var err error
	meta := m.meta
	switch {
	case m.badSubject:
		meta, err = snapshot.Meta{}, fmt.Errorf("stream seq %d: %w: subject", m.meta.StreamSeq, snapshot.ErrBadMessage)
	case m.bad:
		meta, err = snapshot.Meta{Session: m.meta.Session, StreamSeq: m.meta.StreamSeq}, h.badErr(m)
	}
	out, _ := s.apply(meta, m.data, err)
	if out == fencedGap {
		st, err := h.latest(m.meta.Session, s.fence)
		s.applyRead(m.meta.Session, m.meta.StreamSeq, st, err)
	}
}

func (h history) badErr(m msg) error {
	return fmt.Errorf("session %s stream seq %d: %w: corrupt", m.meta.Session, m.meta.StreamSeq, snapshot.ErrBadMessage)
}

// latest is snapshot.Latest over the generated stream: from the session's
// newest message down the Prev chain over fenced ones.
func (h history) latest(id model.SessionID, fence snapshot.Fence) (snapshot.Stored, error) {
	top := -1
	for i, m := range h.msgs {
		if m.meta.Session == id && !m.badSubject {
			top = i
		}
	}
	if top < 0 {
		return snapshot.Stored{}, snapshot.ErrNotFound
	}
	for m := h.msgs[top]; ; m = h.msgs[m.meta.Prev-1] {
		if m.bad {
			return snapshot.Stored{Meta: snapshot.Meta{Session: id, StreamSeq: m.meta.StreamSeq}}, h.badErr(m)
		}
		if !fence.Fenced(m.meta.Epoch, m.meta.StreamSeq) {
			return snapshot.Stored{Meta: m.meta, Data: m.data}, nil
		}
		if m.meta.Prev == 0 {
			return snapshot.Stored{}, fmt.Errorf("session %s: only fenced: %w", id, snapshot.ErrNotFound)
		}
	}
}

// expect returns, per session, the newest valid message under the fence
// (nil if none) and the newest invalid one's stream seq.
func (h history) expect(fence snapshot.Fence) (map[model.SessionID]*msg, map[model.SessionID]uint64) {
	valid := make(map[model.SessionID]*msg)
	bad := make(map[model.SessionID]uint64)
	for i := range h.msgs {
		m := &h.msgs[i]
		switch {
		case m.badSubject:
		case m.bad:
			bad[m.meta.Session] = m.meta.StreamSeq
		case !fence.Fenced(m.meta.Epoch, m.meta.StreamSeq):
			valid[m.meta.Session] = m
		}
	}
	return valid, bad
}

// check compares the store with the history. exactQuarantine: every
// message was delivered, so a session is quarantined exactly when its
// newest invalid message is newer than its newest valid one. Otherwise (a
// catch-up, a Refence) a session may also be quarantined when what is
// below a fenced snapshot could not be read; but a session that is not
// quarantined holds exactly its newest valid snapshot, and one whose
// newest message is invalid is always quarantined.
func (h history) check(t *rapid.T, s *store, fence snapshot.Fence, exactQuarantine bool) {
	valid, bad := h.expect(fence)
	var held int64
	for _, id := range h.ids {
		v := valid[id]
		var vseq uint64
		if v != nil {
			vseq = v.meta.StreamSeq
		}
		_, isQ := s.quarantined[id]
		wantQ := bad[id] > vseq
		if wantQ && !isQ || exactQuarantine && isQ != wantQ {
			t.Fatalf("session %s: quarantined %v, want %v (newest invalid %d, newest valid %d)", id, isQ, wantQ, bad[id], vseq)
		}
		e := s.sessions[id]
		if e != nil {
			held += int64(len(e.data))
			if fence.Fenced(e.epoch, e.streamSeq) {
				t.Fatalf("session %s: holds fenced stream seq %d", id, e.streamSeq)
			}
		}
		if isQ {
			if e != nil && (h.msgs[e.streamSeq-1].bad || !bytes.Equal(e.data, h.msgs[e.streamSeq-1].data)) {
				t.Fatalf("session %s: holds stream seq %d, not a valid snapshot", id, e.streamSeq)
			}
			continue
		}
		switch {
		case v == nil || v.meta.Tombstone:
			if e != nil {
				t.Fatalf("session %s: holds stream seq %d, want nothing (newest valid %d)", id, e.streamSeq, vseq)
			}
		case e == nil:
			t.Fatalf("session %s: holds nothing, want stream seq %d", id, vseq)
		default:
			st, ok := s.get(id)
			if !ok || st.StreamSeq != vseq || !bytes.Equal(st.Data, v.data) || st.Epoch != v.meta.Epoch ||
				st.Seq != v.meta.Seq || st.Node != v.meta.Node || !st.Time.Equal(v.meta.Time) || st.Size != len(v.data) {
				t.Fatalf("session %s: holds %+v, want %+v", id, st.Meta, v.meta)
			}
		}
	}
	if s.held != held {
		t.Fatalf("held bytes %d, want %d", s.held, held)
	}
	if len(s.sessions) > len(h.ids) {
		t.Fatalf("%d sessions held, of %d", len(s.sessions), len(h.ids))
	}
}

// shuffled returns the indexes in a random order, each at least once, some
// more than once.
func shuffled(t *rapid.T, idx []int) []int {
	order := rapid.Permutation(idx).Draw(t, "order")
	for range rapid.IntRange(0, len(idx)).Draw(t, "duplicates") {
		at := rapid.IntRange(0, len(order)).Draw(t, "at")
		dup := rapid.SampledFrom(idx).Draw(t, "duplicate")
		order = append(order[:at], append([]int{dup}, order[at:]...)...)
	}
	return order
}

func indexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// Every message delivered at least once, in any order.
func TestStoreAnyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := genHistory(t, true)
		s := newStore(h.claims, DefaultMaxEnded, bugs.Set{})
		for _, i := range shuffled(t, indexes(len(h.msgs))) {
			h.deliver(s, i)
		}
		h.check(t, s, h.claims, true)
	})
}

// A catch-up: each session's newest message first, in stream order (what
// DeliverLastPerSubject delivers), then any part of the older history, in
// any order, with duplicates (a redelivery after a consumer reset).
func TestStoreCatchUp(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := genHistory(t, rapid.Bool().Draw(t, "with bad"))
		s := newStore(h.claims, DefaultMaxEnded, bugs.Set{})
		newest := make(map[model.SessionID]int)
		for i, m := range h.msgs {
			if !m.badSubject {
				newest[m.meta.Session] = i
			}
		}
		var tops, rest []int
		for i, m := range h.msgs {
			if !m.badSubject && newest[m.meta.Session] == i {
				tops = append(tops, i)
			} else if rapid.Bool().Draw(t, "redeliver") {
				rest = append(rest, i)
			}
		}
		for _, i := range tops {
			h.deliver(s, i)
		}
		if len(rest) > 0 {
			for _, i := range shuffled(t, rest) {
				h.deliver(s, i)
			}
		}
		h.check(t, s, h.claims, false)
	})
}

// The fence changes midway: messages delivered before the backup hears of
// the later claims are judged by the earlier ones; then Refence replaces
// what became fenced, and the rest is judged by all claims.
func TestStoreRefence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := genHistory(t, rapid.Bool().Draw(t, "with bad"))
		known := rapid.IntRange(0, len(h.claims)).Draw(t, "claims known")
		fence := &claimsVar{h.claims[:known]}
		s := newStore(fence, DefaultMaxEnded, bugs.Set{})
		order := shuffled(t, indexes(len(h.msgs)))
		at := rapid.IntRange(0, len(order)).Draw(t, "claim heard at")
		for _, i := range order[:at] {
			h.deliver(s, i)
		}
		fence.c = h.claims
		for _, r := range s.fencedHeld() {
			st, err := h.latest(r.id, fence)
			s.replace(r, st, err)
		}
		for _, i := range order[at:] {
			h.deliver(s, i)
		}
		h.check(t, s, h.claims, false)
	})
}

type claimsVar struct{ c snapshot.Claims }

func (f *claimsVar) Fenced(epoch, streamSeq uint64) bool { return f.c.Fenced(epoch, streamSeq) }

func TestEndedSetIsBounded(t *testing.T) {
	e := newEndedSet(3)
	id := func(i int) model.SessionID { return modeltest.SessionID(i) }
	for i := range 5 {
		e.add(id(i), uint64(10+i), 1)
	}
	if e.len() != 3 || e.get(id(0)) != 0 || e.get(id(1)) != 0 || e.get(id(4)) != 14 {
		t.Fatalf("after 5 adds to 3: len %d, %v", e.len(), e.seqs)
	}
	// Forgotten, then ended again later: the old ring slot must not
	// evict the new record.
	e.forget(id(2))
	e.add(id(2), 20, 1)
	e.add(id(5), 21, 1)
	if e.get(id(2)) != 20 || e.len() != 3 {
		t.Fatalf("record of a session ended again: %v", e.seqs)
	}
	none := newEndedSet(0)
	none.add(id(1), 1, 1)
	if none.len() != 0 {
		t.Fatal("a zero-size set remembered")
	}
}

func TestStoreKeepsNoMessageMemory(t *testing.T) {
	s := newStore(nil, DefaultMaxEnded, bugs.Set{})
	subject := []byte("understudy.sess." + string(modeltest.SessionID(1)))
	buf := append([]byte("headers..."), "payload"...)
	// The id shares the subject's memory, as a substring of a message's
	// subject does.
	id := model.SessionID(unsafe.String(&subject[len("understudy.sess.")], model.SessionIDLen))
	m := snapshot.Meta{Session: id, Epoch: 1, Seq: 1, Node: "n1", Format: 1, StreamSeq: 1}
	if out, err := s.apply(m, buf[10:], nil); out != applied || err != nil {
		t.Fatalf("apply: %v %v", out, err)
	}
	st, _ := s.get(modeltest.SessionID(1))
	if cap(st.Data) != len("payload") || &st.Data[0] == &buf[10] {
		t.Fatalf("held payload shares the message buffer or is not exact size: cap %d", cap(st.Data))
	}
	copy(subject[len("understudy.sess."):], "XXXXXXXXXXXXXXXXXXXXXXXXXX")
	if _, ok := s.get(modeltest.SessionID(1)); !ok {
		t.Fatal("the map key shares the subject's memory")
	}
}
