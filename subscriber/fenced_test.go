package subscriber_test

import (
	"testing"
	"time"

	"understudy/internal/bugs"
	"understudy/model/modeltest"
	"understudy/subscriber"
)

// A zombie's snapshot that lands above the new primary's fence, before the
// backup hears of the claim, is the newest copy it holds: fenced. Lookup
// must say the stream has to be read, never that the session is absent
// (defect 6 of the safety review: the 410s of the failover benchmark).
func TestFencedNeverMeansAbsent(t *testing.T) {
	for _, tc := range []struct {
		name string
		bugs bugs.Set
		want subscriber.Held
	}{
		{"fixed", bugs.Set{}, subscriber.MustRead},
		{"planted FencedIsAbsent", bugs.Set{FencedIsAbsent: true}, subscriber.Absent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fence := &fenceVar{}
			sub := e.start(subscriber.Config{Fence: fence, Bugs: tc.bugs})
			valid := e.publish(as(e.session(0, 0), "n1", 1))
			fenceSeq := e.lastSeq()
			zombie := e.publish(as(e.session(0, 1), "n1", 1))
			e.drain(sub)
			fence.claim(2, fenceSeq)

			if _, held := sub.Lookup(valid.Session); held != tc.want {
				t.Fatalf("Lookup of session %s whose newest copy (stream seq %d) is fenced: %s, want %s", valid.Session, zombie.StreamSeq, held, tc.want)
			}
			if tc.want != subscriber.MustRead {
				return
			}
			st, err := sub.ReadLatest(e.ctx, valid.Session)
			if err != nil {
				t.Fatal(err)
			}
			if !sameStored(st, valid) {
				t.Fatalf("ReadLatest: %s", diffStored(st, valid))
			}
			sub.Take(st)
			got, held := sub.Lookup(valid.Session)
			if held != subscriber.Valid || !sameStored(got, valid) {
				t.Fatalf("after Take: %s %s", held, diffStored(got, valid))
			}
		})
	}
}

// The resolver judges held snapshots again after a claim without being
// told twice: Kick once, and the fenced copy is replaced by the valid one.
func TestKickRefencesInTheBackground(t *testing.T) {
	e := newEnv(t)
	fence := &fenceVar{}
	sub := e.start(subscriber.Config{Fence: fence})
	valid := e.publish(as(e.session(0, 0), "n1", 1))
	fenceSeq := e.lastSeq()
	e.publish(as(e.session(0, 1), "n1", 1))
	e.drain(sub)
	fence.claim(2, fenceSeq)
	sub.Kick()
	for {
		got, held := sub.Lookup(valid.Session)
		if held == subscriber.Valid && sameStored(got, valid) {
			return
		}
		if e.ctx.Err() != nil {
			t.Fatalf("session %s still %s after Kick", valid.Session, held)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A read under a fenced message that fails for a passing reason (here a
// timeout) says nothing of the session: it must not quarantine it, and
// Lookup sends the reader to the stream (defect 4).
func TestTransientReadDoesNotQuarantine(t *testing.T) {
	for _, tc := range []struct {
		name string
		bugs bugs.Set
		want subscriber.Held
	}{
		{"fixed", bugs.Set{}, subscriber.MustRead},
		{"planted QuarantineTransient", bugs.Set{QuarantineTransient: true}, subscriber.Quarantined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fence := &fenceVar{}
			valid := e.publish(as(e.session(0, 0), "n1", 1))
			fence.claim(2, e.lastSeq())
			e.publish(as(e.session(0, 1), "n1", 1))
			// A catch-up sees only the fenced message and reads under it;
			// every read times out at once.
			sub := e.caughtUp(subscriber.Config{Fence: fence, Bugs: tc.bugs, ReadTimeout: time.Nanosecond})
			if _, held := sub.Lookup(valid.Session); held != tc.want {
				t.Fatalf("Lookup of session %s after a timed-out read: %s, want %s", valid.Session, held, tc.want)
			}
			if tc.want == subscriber.MustRead && sub.Stats().Quarantined != 0 {
				t.Fatalf("quarantined %d after a timeout", sub.Stats().Quarantined)
			}
			if _, held := sub.Lookup(modeltest.SessionID(9)); held != subscriber.Absent {
				t.Fatalf("a session never written: %s, want absent", held)
			}
		})
	}
}
