package group

import "errors"

// Sentinel errors.
var (
	// ErrHeld: another live node holds the group.
	ErrHeld = errors.New("group held by another node")
	// ErrLostGroup: this node was the primary and is no longer: its
	// renewal found the entry claimed by another node.
	ErrLostGroup = errors.New("lost the group")
	// ErrNoBackup: nobody answered the failover signal.
	ErrNoBackup = errors.New("no backup answered")
	// ErrNotPrimary: an operation that only the primary may do.
	ErrNotPrimary = errors.New("not the primary")
)
