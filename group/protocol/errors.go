package protocol

import "errors"

// Sentinel errors.
var (
	// ErrHeld: another live node holds the group.
	ErrHeld = errors.New("group held by another node")
	// ErrLostGroup: this node was the primary and is no longer: the
	// bucket holds another owner's entry.
	ErrLostGroup = errors.New("lost the group")
	// ErrNotPrimary: an operation that only the primary may do.
	ErrNotPrimary = errors.New("not the primary")
	// ErrNoEntry: the bucket holds no entry for the group.
	ErrNoEntry = errors.New("no group entry")
	// ErrTimeout: a failover attempt did not finish within its bound.
	ErrTimeout = errors.New("failover attempt timed out")
	// ErrCanceled: the caller gave up on the operation.
	ErrCanceled = errors.New("canceled")
)
