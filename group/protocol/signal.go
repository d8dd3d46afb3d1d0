package protocol

import (
	"time"

	"understudy/fencing"
)

// Reasons for a failover signal.
const (
	// ReasonUnreachable: the primary refused or reset a connection; where
	// the fast path is allowed a backup may prove the crash and skip the
	// lease.
	ReasonUnreachable = "unreachable"
	// ReasonLease: the primary's renewals stopped or its health checks fail.
	ReasonLease = "lease"
	// ReasonOperator: a person asked for it.
	ReasonOperator = "operator"
	// ReasonReleased: the primary handed the group over (not sent as a
	// signal: a backup that sees a released entry claims at once).
	ReasonReleased = "released"
	// ReasonStartup: a node started as primary claims the group.
	ReasonStartup = "startup"
)

// FailoverRequest is the failover signal.
type FailoverRequest struct {
	Group  string `json:"group"`
	Failed string `json:"failed"` // the node believed dead
	Reason string `json:"reason"`
}

// FailoverReply is a backup's answer: the group's owner once the failover is
// settled. Promoted is set only in the reply of the node that won.
type FailoverReply struct {
	Node     string        `json:"node"`
	Address  string        `json:"address"`
	Epoch    uint64        `json:"epoch"`
	Promoted bool          `json:"promoted,omitempty"`
	FastPath bool          `json:"fast_path,omitempty"`
	Sessions int           `json:"sessions,omitempty"`
	Took     time.Duration `json:"took,omitempty"`
	// Parts of Took, for the winner: lease wait (or the fast path's ping),
	// drain, claim.
	Wait  time.Duration `json:"wait,omitempty"`
	Drain time.Duration `json:"drain,omitempty"`
	Claim time.Duration `json:"claim,omitempty"`
	Error string        `json:"error,omitempty"`
}

// Promotion describes a claim this member won.
type Promotion struct {
	Epoch    uint64
	Fence    uint64
	Claims   fencing.Claims
	Previous string // the owner before, "" for a new group
}

func ownerReply(e Entry) FailoverReply {
	return FailoverReply{Node: e.Owner, Address: e.Address, Epoch: e.Epoch}
}
