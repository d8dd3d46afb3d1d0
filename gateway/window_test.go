package gateway

import (
	"context"
	"testing"
	"time"
)

// clock is a window's clock, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func testWindow(max int) (*window, *clock) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	w := newWindow(max)
	w.now = c.now
	return w, c
}

var forever = func() time.Time { return time.Now().Add(time.Hour) }

// TestWindowShrinksOnBusyAndGrowsBack: a busy answer cuts the bound (once
// per cooldown, whatever the burst), never below the floor; answers grow
// it back by about one per window's worth, never past the maximum.
func TestWindowShrinksOnBusyAndGrowsBack(t *testing.T) {
	w, c := testWindow(64)
	for range 64 {
		if !w.take(context.Background(), forever) {
			t.Fatal("no place in an empty window")
		}
	}
	for range 10 {
		w.give(true, false) // a burst of busy answers
	}
	if l, in, _ := w.state(); l != 48 || in != 54 {
		t.Fatalf("after a burst of busy answers: bound %d, in flight %d; want 48 (one cut), 54", l, in)
	}
	for range 54 {
		w.give(false, false)
	}
	for range 30 {
		c.t = c.t.Add(windowCooldown)
		w.take(context.Background(), forever)
		w.give(true, false)
	}
	if l, _, _ := w.state(); l != windowMin {
		t.Fatalf("after busy answers for 3 s: bound %d, want the floor %d", l, windowMin)
	}
	// Answers grow it back: from 4, about n²/2 answers reach n.
	for range 2000 {
		w.take(context.Background(), forever)
		w.give(false, true)
	}
	if l, _, _ := w.state(); l < 60 || l > 64 {
		t.Fatalf("after 2,000 answers: bound %d, want close to 64", l)
	}
	for range 10000 {
		w.take(context.Background(), forever)
		w.give(false, true)
	}
	if l, _, _ := w.state(); l != 64 {
		t.Fatalf("after many answers: bound %d, want the maximum 64", l)
	}
	// A failure on the way says nothing of the owner's load.
	w.take(context.Background(), forever)
	w.give(false, false)
	if l, in, _ := w.state(); l != 64 || in != 0 {
		t.Fatalf("after a failed attempt: bound %d, in flight %d; want 64, 0", l, in)
	}
}

// TestWindowQueuesInOrder: requests beyond the bound wait, and a place
// given back goes to the oldest; one that gives up leaves no trace and
// loses no place.
func TestWindowQueuesInOrder(t *testing.T) {
	w, _ := testWindow(4)
	ctx := context.Background()
	for range 4 {
		w.take(ctx, forever)
	}
	got := make(chan int, 3)
	for i := range 3 {
		go func() {
			if w.take(ctx, forever) {
				got <- i
			}
		}()
		for { // queued in this order
			if _, _, waiting := w.state(); waiting == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	// One more gives up at once: its deadline has passed.
	if w.take(ctx, func() time.Time { return time.Now() }) {
		t.Fatal("a full window gave a place past its deadline")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if w.take(cancelled, forever) {
		t.Fatal("a full window gave a place to a cancelled request")
	}
	for want := range 3 {
		w.give(false, false)
		if i := <-got; i != want {
			t.Fatalf("place %d went to waiter %d, want %d", want, i, want)
		}
	}
	if l, in, waiting := w.state(); l != 4 || in != 4 || waiting != 0 {
		t.Fatalf("bound %d, in flight %d, waiting %d; want 4, 4, 0", l, in, waiting)
	}
}
