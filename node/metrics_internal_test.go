package node

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"understudy/model"
	"understudy/snapshot"
)

func TestQuarantineReason(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("session x: %w", snapshot.ErrSealed):                         "sealed",
		fmt.Errorf("session x: %w: %w", snapshot.ErrBadMessage, errors.New("")): "bad_message",
		&model.StepError{Err: model.ErrUnknownApp}:                              "unknown_app",
		&model.StepError{Err: fmt.Errorf("%w: x", model.ErrCorruptSession)}:     "corrupt",
		errors.New("something else"):                                            "other",
	} {
		if got := quarantineReason(err); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}

// TestLagClock: lag in time is how long the copy has not been level with
// the stream, from the last time it was seen level.
func TestLagClock(t *testing.T) {
	var c lagClock
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.observe(0, t0)
	if s := c.seconds(5, t0.Add(1500*time.Millisecond)); s != 1.5 {
		t.Errorf("behind for 1.5 s: %v", s)
	}
	c.observe(3, t0.Add(2*time.Second))
	if s := c.seconds(1, t0.Add(3*time.Second)); s != 3 {
		t.Errorf("still behind at 3 s: %v", s)
	}
	if s := c.seconds(0, t0.Add(4*time.Second)); s != 0 {
		t.Errorf("level: %v", s)
	}
	if s := c.seconds(2, t0.Add(4500*time.Millisecond)); s != 0.5 {
		t.Errorf("behind again for 0.5 s: %v", s)
	}
}
