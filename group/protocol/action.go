package protocol

import (
	"time"

	"understudy/fencing"
)

// Mono is a reading of a member's monotonic clock, in nanoseconds since an
// origin its driver picks. The core never reads a clock: every event
// carries the time it happened at.
type Mono int64

// Add returns m moved by d.
func (m Mono) Add(d time.Duration) Mono { return m + Mono(d) }

// Sub returns the duration m-o.
func (m Mono) Sub(o Mono) time.Duration { return time.Duration(m - o) }

// Action is what the core asks its driver to do. Every action is one of
// the types below; the driver reports the outcome of those that do I/O as
// an event (WriteDone, PingDone, LastSeqDone, DrainDone, PromoteDone).
type Action interface{ action() }

// WriteKind says why an entry is written.
type WriteKind uint8

// Kinds of writes.
const (
	KindClaim   WriteKind = iota + 1 // take the group at the next epoch
	KindRenew                        // renew the lease
	KindRelease                      // hand the group over
)

func (k WriteKind) String() string {
	switch k {
	case KindClaim:
		return "claim"
	case KindRenew:
		return "renew"
	case KindRelease:
		return "release"
	}
	return "write"
}

// WriteID names one logical write; its attempts share it.
type WriteID uint64

// Write asks for one attempt of a compare-and-set of the group entry to
// Entry, over revision Rev (Rev 0: create the entry, which must not
// exist). The driver bounds the attempt by a timeout and reports it with
// WriteDone. On a conflict it reads the entry from the bucket's leader
// and reports what it found.
type Write struct {
	ID      WriteID
	Kind    WriteKind
	Attempt int // 1 for the first
	Entry   Entry
	Rev     uint64
}

// Ping asks the failed node's control subject whether its connection is
// alive (the crash fast path). The driver reports it with PingDone.
type Ping struct {
	Takeover uint64
	Node     string
}

// ReadLastSeq asks for the session stream's last sequence, read after the
// lease has been waited out (or the crash proven). Reported with
// LastSeqDone.
type ReadLastSeq struct{ Takeover uint64 }

// Drain asks the driver to wait until this node's copy of the stream holds
// everything up to Seq. Reported with DrainDone.
type Drain struct {
	Takeover uint64
	Seq      uint64
}

// Promote says this member has claimed the group: the node takes over the
// sessions and serves as primary. Reported with PromoteDone.
type Promote struct{ Promotion }

// Demote says this member is no longer the primary: it lost the group
// (Err wraps ErrLostGroup) or released it (Err nil). Requests in flight
// fail the answer rule from now on.
type Demote struct{ Err error }

// ClaimsChanged says the group's history of claims changed: snapshots held
// must be judged again by the fence rule.
type ClaimsChanged struct{ Claims fencing.Claims }

// Reply answers a failover signal. None: this member does not answer it
// (another member will, or the signal is about this member itself).
type Reply struct {
	Signal SignalID
	Reply  FailoverReply
	None   bool
}

// Done completes an operation a caller waits for (Claim, Release).
type Done struct {
	Op  OpID
	Err error
}

func (Write) action()         {}
func (Ping) action()          {}
func (ReadLastSeq) action()   {}
func (Drain) action()         {}
func (Promote) action()       {}
func (Demote) action()        {}
func (ClaimsChanged) action() {}
func (Reply) action()         {}
func (Done) action()          {}

// WriteOutcome is what became of one attempt of a Write.
type WriteOutcome uint8

// Outcomes of a write attempt.
const (
	// Landed: the bucket acknowledged the write at Rev.
	Landed WriteOutcome = iota + 1
	// Conflict: the bucket refused it (wrong last revision, or the entry
	// exists); Current is what the leader holds, unless ReadFailed.
	Conflict
	// Unknown: no answer in time; the write may have landed.
	Unknown
	// NotSent: known not to have reached the bucket (disconnected).
	NotSent
)

func (o WriteOutcome) String() string {
	switch o {
	case Landed:
		return "landed"
	case Conflict:
		return "conflict"
	case Unknown:
		return "unknown"
	case NotSent:
		return "not sent"
	}
	return "outcome"
}

// WriteResult reports an attempt of a Write.
type WriteResult struct {
	ID      WriteID
	Outcome WriteOutcome
	Rev     uint64 // Landed: the entry's new revision
	// Conflict: the entry as the leader holds it after the refusal.
	Current    Entry
	Exists     bool // Current exists (false: no entry, or deleted)
	ReadFailed bool // the leader could not be read: nothing is known
}

// PingResult is the answer to a Ping.
type PingResult uint8

// Ping answers.
const (
	NoResponders PingResult = iota + 1 // nobody subscribes: the connection is gone
	Answered                           // the node answered: it lives
	Silent                             // no answer in time: it may be paused
)

// SignalID names a failover signal the driver holds for a Reply.
type SignalID uint64

// OpID names an operation a caller waits for.
type OpID uint64
