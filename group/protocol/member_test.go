package protocol

import (
	"testing"
	"time"

	"understudy/internal/bugs"
)

const ms = Mono(time.Millisecond)

// find returns the first action of type A.
func find[A Action](acts []Action) (A, bool) {
	for _, a := range acts {
		if x, ok := a.(A); ok {
			return x, true
		}
	}
	var zero A
	return zero, false
}

func must[A Action](t *testing.T, what string, acts []Action) A {
	t.Helper()
	a, ok := find[A](acts)
	if !ok {
		t.Fatalf("%s: no %T in %+v", what, a, acts)
	}
	return a
}

// primary returns a member that claimed a new group at time 0: its claim
// landed at revision 1 (sent at 1ms, answered at 2ms).
func primary(t *testing.T, planted bugs.Set) *Member {
	t.Helper()
	m := New(Config{Node: "a", Address: "http://a", Lease: 300 * time.Millisecond, Bugs: planted})
	m.Load(0)
	read := must[ReadLastSeq](t, "claim", m.Claim(0, 1))
	drain := must[Drain](t, "last seq", m.LastSeqDone(0, read.Takeover, 10, nil))
	w := must[Write](t, "drained", m.DrainDone(1*ms, drain.Takeover, nil))
	acts := m.WriteDone(2*ms, WriteResult{ID: w.ID, Outcome: Landed, Rev: 1})
	must[Promote](t, "claim landed", acts)
	m.PromoteDone(2*ms, 0, nil)
	return m
}

// Defect 2: a claim whose first attempt went unanswered and whose retry
// conflicts with that very write counts its lease from the first attempt.
func TestLeaseCountsFromFirstAttempt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
		from    Mono
	}{
		{"fixed", bugs.Set{}, 100 * ms},
		{"planted LeaseFromRetry", bugs.Set{LeaseFromRetry: true}, 260 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{Node: "b", Address: "http://b", Lease: 300 * time.Millisecond, Bugs: tc.planted})
			m.Load(0)
			read := must[ReadLastSeq](t, "claim", m.Claim(0, 1))
			drain := must[Drain](t, "last seq", m.LastSeqDone(0, read.Takeover, 10, nil))
			first := must[Write](t, "drained", m.DrainDone(100*ms, drain.Takeover, nil))
			m.WriteDone(250*ms, WriteResult{ID: first.ID, Outcome: Unknown})
			retry := must[Write](t, "retry due", m.Tick(260*ms))
			if retry.ID != first.ID || retry.Attempt != 2 {
				t.Fatalf("retry %+v of %+v", retry, first)
			}
			landed := first.Entry
			landed.Revision = 1
			acts := m.WriteDone(270*ms, WriteResult{ID: retry.ID, Outcome: Conflict, Current: landed, Exists: true})
			must[Promote](t, "own write found", acts)
			if exp, _ := m.LeaseExpiry(); exp != tc.from+Mono(300*time.Millisecond) {
				t.Fatalf("lease lapses at %v, want %v (counted from %v)", time.Duration(exp), time.Duration(tc.from+Mono(300*time.Millisecond)), time.Duration(tc.from))
			}
		})
	}
}

// Defect 5: a release that conflicts with the member's own renewal, which
// landed first, is not a release: it is sent again over the renewal.
func TestReleaseRacingRenewal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
	}{{"fixed", bugs.Set{}}, {"planted LooseRelease", bugs.Set{LooseRelease: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			m := primary(t, tc.planted)
			renew := must[Write](t, "renewal due", m.Tick(110*ms))
			rel := must[Write](t, "release", m.Release(111*ms, 7))
			if rel.Rev != 1 {
				t.Fatalf("release over rev %d, want 1", rel.Rev)
			}
			renewed := renew.Entry
			renewed.Revision = 2
			m.WriteDone(112*ms, WriteResult{ID: renew.ID, Outcome: Landed, Rev: 2})
			acts := m.WriteDone(113*ms, WriteResult{ID: rel.ID, Outcome: Conflict, Current: renewed, Exists: true})
			done, reported := find[Done](acts)
			if tc.planted.LooseRelease {
				if !reported || done.Err != nil {
					t.Fatalf("planted: the renewal was not taken for the release: %+v", acts)
				}
				return
			}
			if reported {
				t.Fatalf("a release that did not land reported done: %+v", done)
			}
			again := must[Write](t, "release again", acts)
			if again.Kind != KindRelease || again.Rev != 2 || !again.Entry.Released {
				t.Fatalf("release sent again as %+v, want over rev 2", again)
			}
		})
	}
}

// Defect 9: an older revision delivered late (a watcher's redelivery)
// never demotes a newer primary.
func TestOlderRevisionChangesNothing(t *testing.T) {
	m := primary(t, bugs.Set{})
	old := Entry{Epoch: 0, Owner: "z", Revision: 0}
	if acts := m.Observe(50*ms, old, true); len(acts) != 0 {
		t.Fatalf("an older revision gave %+v", acts)
	}
	if m.Role() != Primary || !m.Valid(50*ms) {
		t.Fatal("demoted by a redelivery")
	}
	e, _ := m.Entry()
	other := Entry{Epoch: 9, Owner: "z", Revision: e.Revision}
	if acts := m.Observe(60*ms, other, true); len(acts) != 0 || m.Role() != Primary {
		t.Fatalf("the same revision delivered again with other content demoted the primary: %+v", acts)
	}
}

// Defect 1: the answer rule asks for the epoch the interaction was
// applied at, not just a valid lease.
func TestMayAnswerOnlyAtTheCurrentEpoch(t *testing.T) {
	m := primary(t, bugs.Set{})
	if !m.MayAnswer(10*ms, 1) {
		t.Fatal("the primary of epoch 1 may not answer for epoch 1")
	}
	if m.MayAnswer(10*ms, 0) {
		t.Fatal("answered an interaction of another epoch")
	}
	if m.MayAnswer(400*ms, 1) {
		t.Fatal("answered after the lease lapsed")
	}
	planted := primary(t, bugs.Set{AnswerAnyEpoch: true})
	if !planted.MayAnswer(10*ms, 0) {
		t.Fatal("planted AnswerAnyEpoch: the epoch still checked")
	}
}

// Defect 7: a renewal whose answer was lost, seen landed on the watch,
// counts from its send time.
func TestRenewalSeenOnTheWatchCounts(t *testing.T) {
	m := primary(t, bugs.Set{})
	renew := must[Write](t, "renewal due", m.Tick(110*ms))
	m.WriteDone(260*ms, WriteResult{ID: renew.ID, Outcome: Unknown})
	seen := renew.Entry
	seen.Revision = 2
	m.Observe(280*ms, seen, true)
	if exp, _ := m.LeaseExpiry(); exp != 110*ms+Mono(300*time.Millisecond) {
		t.Fatalf("lease lapses at %v, want 410ms", time.Duration(exp))
	}
}

// takeoverAt returns a backup b that has read the stream's last sequence
// (10) and drained in a lease takeover of a's entry at revision 5, with
// its claim sent.
func takeoverAt(t *testing.T, planted bugs.Set) (*Member, Entry, Write) {
	t.Helper()
	b := New(Config{Node: "b", Address: "http://b", Lease: 300 * time.Millisecond, Bugs: planted})
	base := Entry{Epoch: 1, Owner: "a", Address: "http://a", Fence: 0, Renewals: 4, Revision: 5}
	b.Observe(0, base, true)
	b.Load(0)
	b.Signal(10*ms, 1, FailoverRequest{Failed: "a", Reason: ReasonLease}, false)
	read := must[ReadLastSeq](t, "lease waited out", b.Tick(400*ms))
	drain := must[Drain](t, "last seq", b.LastSeqDone(401*ms, read.Takeover, 10, nil))
	claim := must[Write](t, "drained", b.DrainDone(402*ms, drain.Takeover, nil))
	return b, base, claim
}

// Found by the simulator: the owner renews and writes on while the claim
// is unanswered, then releases. The takeover claims over the release with
// a sequence read after it, not the one read before.
func TestReleaseDuringATakeoverReadsAgain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
	}{{"fixed", bugs.Set{}}, {"planted FenceBeforeRelease", bugs.Set{FenceBeforeRelease: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			b, base, claim := takeoverAt(t, tc.planted)
			renewed := base
			renewed.Renewals, renewed.Revision = 5, 6
			b.Observe(420*ms, renewed, true) // unseen by the takeover: its claim is in flight
			released := renewed
			released.Renewals, released.Released, released.Revision = 6, true, 7
			b.Observe(430*ms, released, true)
			acts := b.WriteDone(550*ms, WriteResult{ID: claim.ID, Outcome: Conflict, Current: released, Exists: true})
			if tc.planted.FenceBeforeRelease {
				w := must[Write](t, "planted: claim at once", acts)
				if w.Entry.Fence != 10 {
					t.Fatalf("planted: fence %d", w.Entry.Fence)
				}
				return
			}
			if w, ok := find[Write](acts); ok {
				t.Fatalf("claimed over the release with fence %d read before it", w.Entry.Fence)
			}
			read := must[ReadLastSeq](t, "read again", acts)
			if b.LastSeqDone(551*ms, read.Takeover-1, 10, nil) != nil {
				t.Fatal("the earlier read's answer was taken")
			}
			drain := must[Drain](t, "last seq", b.LastSeqDone(552*ms, read.Takeover, 25, nil))
			w := must[Write](t, "drained", b.DrainDone(553*ms, drain.Takeover, nil))
			if w.Entry.Fence != 25 || w.Rev != 7 {
				t.Fatalf("claim %+v, want fence 25 over rev 7", w)
			}
		})
	}
}

// Found by the simulator: a claim that went unanswered while the entry
// moved past its revision can never land; the takeover judges the entry
// (here: renewed, the owner lives) instead of waiting for its deadline.
func TestPrunedClaimEndsTheWait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
	}{{"fixed", bugs.Set{}}, {"planted WaitPrunedClaim", bugs.Set{WaitPrunedClaim: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			b, base, claim := takeoverAt(t, tc.planted)
			b.WriteDone(560*ms, WriteResult{ID: claim.ID, Outcome: Unknown})
			renewed := base
			renewed.Renewals, renewed.Revision = 5, 6
			acts := b.Observe(565*ms, renewed, true)
			rep, replied := find[Reply](acts)
			if tc.planted.WaitPrunedClaim {
				if replied {
					t.Fatalf("planted: the takeover ended: %+v", rep)
				}
				return
			}
			if !replied || rep.Reply.Node != "a" {
				t.Fatalf("the takeover did not end on the renewal: %+v", acts)
			}
		})
	}
}

func TestClaimWhileHeldIsRefused(t *testing.T) {
	b, base, claim := takeoverAt(t, bugs.Set{})
	renewed := base
	renewed.Renewals, renewed.Revision = 5, 6
	acts := b.WriteDone(410*ms, WriteResult{ID: claim.ID, Outcome: Conflict, Current: renewed, Exists: true})
	rep := must[Reply](t, "renewed", acts)
	if rep.Reply.Node != "a" || b.Role() != Backup {
		t.Fatalf("reply %+v, role %v", rep, b.Role())
	}
	if _, ok := find[Done](acts); ok {
		t.Fatal("a Done for an operation nobody waits for")
	}
}
