package subscriber_test

import (
	"context"
	"errors"
	"testing"

	"understudy/subscriber"
)

// consumers returns how many consumers the session stream has.
func (e *env) consumers() int {
	e.tb.Helper()
	info, err := e.stream.Info(e.ctx)
	if err != nil {
		e.tb.Fatal(err)
	}
	return info.State.Consumers
}

// A paused subscriber consumes nothing (its consumer is gone from the
// server) and keeps what it holds; Own keeps it the truth of what its node
// stores, tombstones included; what others wrote meanwhile comes with the
// catch-up of Resume.
func TestPauseOwnResume(t *testing.T) {
	e := newEnv(t)
	w := want{}
	for i := range 4 {
		w.put(e.publish(e.session(i, 0)))
	}
	sub := e.caughtUp(subscriber.Config{})
	checkHolds(t, "before the pause", sub, w)

	if err := sub.Pause(e.ctx); err != nil {
		t.Fatal(err)
	}
	if !sub.Paused() || e.consumers() != 0 {
		t.Fatalf("paused %v, consumers %d: want paused and none", sub.Paused(), e.consumers())
	}
	// What the node stores itself, handed to Own: a newer snapshot of a
	// held session, a new session, and a tombstone.
	own := e.publish(e.session(0, 2))
	sub.Own(own)
	w.put(own)
	created := e.publish(e.session(7, 1))
	sub.Own(created)
	w.put(created)
	tomb := e.end(e.session(1, 0).ID, "n1", 1, 2)
	sub.Own(tomb)
	w.drop(tomb.Session)
	// Written by another node, not handed to Own: not held while paused.
	other := e.publish(as(e.session(2, 3), "n2", 1))
	checkHolds(t, "paused, after Own (the other node's write not yet)", sub, w)
	if err := sub.DrainTo(e.ctx, e.lastSeq()); !errors.Is(err, subscriber.ErrPaused) {
		t.Fatalf("DrainTo while paused: %v, want ErrPaused", err)
	}

	if err := sub.Resume(e.ctx); err != nil {
		t.Fatal(err)
	}
	if sub.Paused() || e.consumers() != 1 {
		t.Fatalf("resumed: paused %v, consumers %d", sub.Paused(), e.consumers())
	}
	if err := sub.WaitCaughtUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.drain(sub)
	w.put(other)
	checkHolds(t, "resumed", sub, w)

	// Resumed, it consumes as before; Own of a message it is also
	// delivered changes nothing, in either order.
	next := e.publish(e.session(3, 4))
	sub.Own(next)
	e.drain(sub)
	w.put(next)
	checkHolds(t, "after a delivery and Own of the same message", sub, w)
}

// Close of a paused subscriber returns, and a closed one neither pauses
// nor resumes.
func TestClosePaused(t *testing.T) {
	e := newEnv(t)
	e.publish(e.session(1, 0))
	sub := subscriber.New(e.js, e.stream, subscriber.Config{})
	if err := sub.Pause(e.ctx); !errors.Is(err, subscriber.ErrNotStarted) {
		t.Fatalf("Pause before Start: %v", err)
	}
	if err := sub.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Pause(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Pause(e.ctx); err != nil {
		t.Fatalf("a second Pause: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := sub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Resume(e.ctx); !errors.Is(err, subscriber.ErrClosed) {
		t.Fatalf("Resume after Close: %v", err)
	}
	if err := sub.Pause(e.ctx); !errors.Is(err, subscriber.ErrClosed) {
		t.Fatalf("Pause after Close: %v", err)
	}
	if e.consumers() != 0 {
		t.Fatalf("%d consumers left", e.consumers())
	}
}
