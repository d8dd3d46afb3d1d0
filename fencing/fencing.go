// Package fencing holds the fence rule: which snapshots a claim of the
// group makes invalid. It is pure (no I/O, no clock) so that every party
// that judges snapshots, the protocol core and its simulator included,
// applies the one rule.
//
// # Guarantees
//
// A snapshot of epoch e stored at stream sequence q is fenced when the
// first claim of an epoch later than e has a fence sequence below q: the
// writer had lost the group when the stream stored it. Every reader that
// uses Claims.Fenced agrees on every snapshot, across any number of
// failovers that the history holds.
package fencing

// Fence judges snapshots by the fence rule. The group implements it from
// the group entry's history of epochs and fence sequences.
type Fence interface {
	// Fenced reports whether a snapshot of epoch written at stream
	// sequence streamSeq was written by a primary that had already lost
	// the group: a later epoch claimed the group with a fence sequence
	// below streamSeq.
	Fenced(epoch, streamSeq uint64) bool
}

// NoFence fences nothing: for a stream with one writer and no failover
// (tools, tests).
type NoFence struct{}

// Fenced reports false.
func (NoFence) Fenced(uint64, uint64) bool { return false }

// Claim is one epoch's claim of the group: from its fence sequence on, the
// stream holds no valid snapshot of an older epoch.
type Claim struct {
	Epoch uint64 `json:"epoch"`
	Fence uint64 `json:"fence"`
}

// Claims is a group's history of claims, oldest first: it fences correctly
// across several failovers, where the latest claim alone would not (a
// snapshot of epoch 1 written between the fences of epochs 2 and 3 is
// fenced by epoch 2's claim, though it is below epoch 3's fence).
type Claims []Claim

// Fenced applies the fence rule: a snapshot of epoch e stored at streamSeq
// is fenced if the first claim of a later epoch has a fence below streamSeq.
// Fence sequences grow with epochs (each claimant drains the stream first),
// so the first later claim is the tightest. An epoch older than the history
// is judged by the oldest claim kept.
func (cs Claims) Fenced(epoch, streamSeq uint64) bool {
	for _, c := range cs {
		if c.Epoch > epoch {
			return streamSeq > c.Fence
		}
	}
	return false
}

// Last returns the newest claim, and false for an empty history.
func (cs Claims) Last() (Claim, bool) {
	if len(cs) == 0 {
		return Claim{}, false
	}
	return cs[len(cs)-1], true
}
