package protocol

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"understudy/fencing"
)

// Entry is the group's state in the key-value bucket. It is JSON so that
// operators can read it with `nats kv get`.
type Entry struct {
	Epoch   uint64 `json:"epoch"`
	Owner   string `json:"owner"`
	Address string `json:"address"`
	// Fence is the stream sequence the owner drained to before it claimed:
	// no snapshot of an older epoch stored after it is valid.
	Fence uint64 `json:"fence"`
	// Claims is the recent history of (epoch, fence), oldest first: the
	// fence rule needs it across several failovers.
	Claims fencing.Claims `json:"claims"`
	// Released is set by a primary that handed the group over gracefully.
	Released bool `json:"released,omitempty"`
	// Renewed is the owner's wall clock at its last write, for people; the
	// lease itself is measured by monotonic clocks, never by this. The
	// driver stamps it as it sends a write, so the core never reads a
	// clock and Same ignores it.
	Renewed time.Time `json:"renewed"`
	// Renewals numbers the owner's writes: each write of a member carries
	// a number it never used before, so that the member recognises a write
	// in the bucket by its content (Same), whichever attempt landed.
	Renewals uint64 `json:"renewals"`

	// Revision is the entry's revision in the bucket (not stored).
	Revision uint64 `json:"-"`
}

// MaxClaims bounds the history kept in the entry.
const MaxClaims = 32

// DecodeEntry reads an entry as the bucket stores it, at revision rev.
func DecodeEntry(data []byte, rev uint64) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("group entry revision %d: %w", rev, err)
	}
	e.Revision = rev
	return e, nil
}

// Encode returns the entry as the bucket stores it.
func (e Entry) Encode() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // an Entry always marshals
	}
	return b
}

// Same reports whether a and b are the same write: every stored field
// but the wall-clock stamp. A member recognises its own write in the
// bucket this way, whichever attempt of it landed.
func (a Entry) Same(b Entry) bool {
	return a.Epoch == b.Epoch && a.Owner == b.Owner && a.Address == b.Address && a.Fence == b.Fence &&
		a.Released == b.Released && a.Renewals == b.Renewals && slices.Equal(a.Claims, b.Claims)
}

// claimed returns the entry as claimed by node at the next epoch, with
// fence sequence fence.
func (e Entry) claimed(node, address string, fence uint64) Entry {
	n := Entry{
		Epoch: e.Epoch + 1, Owner: node, Address: address, Fence: fence,
		Claims: append(slices.Clone(e.Claims), fencing.Claim{Epoch: e.Epoch + 1, Fence: fence}),
	}
	if len(n.Claims) > MaxClaims {
		n.Claims = n.Claims[len(n.Claims)-MaxClaims:]
	}
	return n
}
