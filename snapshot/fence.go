package snapshot

import "understudy/fencing"

// The fence rule has its home in package fencing; these names keep it
// where readers of snapshots look for it.
type (
	// Fence judges snapshots by the fence rule; see fencing.Fence.
	Fence = fencing.Fence
	// NoFence fences nothing; see fencing.NoFence.
	NoFence = fencing.NoFence
	// Claim is one epoch's claim of the group; see fencing.Claim.
	Claim = fencing.Claim
	// Claims is a group's history of claims; see fencing.Claims.
	Claims = fencing.Claims
)
