package group

import (
	"errors"

	"understudy/group/protocol"
)

// Sentinel errors.
var (
	// ErrHeld: another live node holds the group.
	ErrHeld = protocol.ErrHeld
	// ErrLostGroup: this node was the primary and is no longer: the bucket
	// holds another owner's entry.
	ErrLostGroup = protocol.ErrLostGroup
	// ErrNoBackup: nobody answered the failover signal.
	ErrNoBackup = errors.New("no backup answered")
	// ErrNotPrimary: an operation that only the primary may do.
	ErrNotPrimary = protocol.ErrNotPrimary
)
