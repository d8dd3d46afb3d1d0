package snapshot_test

import (
	"testing"

	"understudy/snapshot"
)

// TestClaimsFenceAcrossFailovers checks the fence rule over a history of
// claims, including the case the latest claim alone gets wrong: a snapshot
// of epoch 1 written between the fences of epochs 2 and 3.
func TestClaimsFenceAcrossFailovers(t *testing.T) {
	claims := snapshot.Claims{{Epoch: 1, Fence: 0}, {Epoch: 2, Fence: 100}, {Epoch: 3, Fence: 250}}
	cases := []struct {
		epoch, seq uint64
		fenced     bool
	}{
		{1, 50, false},  // written before epoch 2 claimed
		{1, 100, false}, // the last epoch-1 snapshot epoch 2 drained
		{1, 101, true},  // written by epoch 1 after epoch 2 claimed
		{1, 200, true},  // below epoch 3's fence, but epoch 2 had already fenced epoch 1
		{2, 200, false}, // epoch 2's own snapshot
		{2, 251, true},  // epoch 2 writing after epoch 3 claimed
		{3, 1000, false},
		{4, 10, false}, // an epoch newer than the history knows: not fenced here
	}
	latestOnly := snapshot.Claims{claims[len(claims)-1]}
	for _, c := range cases {
		if got := claims.Fenced(c.epoch, c.seq); got != c.fenced {
			t.Errorf("epoch %d at %d: fenced %v, want %v", c.epoch, c.seq, got, c.fenced)
		}
	}
	if latestOnly.Fenced(1, 200) {
		t.Error("the latest claim alone fences epoch 1 at 200: the history would not be needed")
	}
	if (snapshot.NoFence{}).Fenced(1, 1<<60) {
		t.Error("NoFence fenced something")
	}
}
