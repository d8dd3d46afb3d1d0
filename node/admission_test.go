package node

import (
	"testing"
	"time"
)

// The bound holds: a request past it waits for a place and gets the one
// that comes free; with none free in time it is turned away, as it is at
// once when the queue is full; a request whose client left stops waiting.
func TestAdmission(t *testing.T) {
	a := newAdmission(2, time.Hour)
	a.maxQueue = 1
	for i := range 2 {
		if ok, waited := a.enter(nil); !ok || waited != 0 {
			t.Fatalf("entry %d under the bound: %v after %v", i, ok, waited)
		}
	}
	if a.inFlight() != 2 {
		t.Fatalf("in flight %d, want 2", a.inFlight())
	}
	got := make(chan bool)
	go func() { ok, _ := a.enter(nil); got <- ok }()
	for a.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	// The queue (of one) is full: the next is turned away at once.
	if ok, _ := a.enter(nil); ok {
		t.Fatal("admitted past a full queue")
	}
	a.leave()
	if !<-got {
		t.Fatal("the waiting request did not get the place that came free")
	}

	left := make(chan struct{})
	go func() { ok, _ := a.enter(left); got <- ok }()
	for a.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	close(left)
	if <-got {
		t.Fatal("admitted after its client left")
	}

	short := newAdmission(1, time.Millisecond)
	short.enter(nil)
	if ok, waited := short.enter(nil); ok || waited < time.Millisecond {
		t.Fatalf("past the bound with no place coming free: %v after %v, want turned away after the wait", ok, waited)
	}

	off := newAdmission(-1, 0)
	for range 1000 {
		if ok, _ := off.enter(nil); !ok {
			t.Fatal("no bound, and turned away")
		}
	}
}
