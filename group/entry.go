package group

import (
	"encoding/json"
	"fmt"
	"time"

	"understudy/snapshot"
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
	Claims snapshot.Claims `json:"claims"`
	// Released is set by a primary that handed the group over gracefully.
	Released bool `json:"released,omitempty"`
	// Renewed is the owner's wall clock at its last renewal, for people;
	// the lease itself is measured by monotonic clocks, never by this.
	Renewed time.Time `json:"renewed"`
	// Renewals counts the owner's renewals in this epoch.
	Renewals uint64 `json:"renewals"`

	// Revision is the entry's revision in the bucket (not stored).
	Revision uint64 `json:"-"`
}

// maxClaims bounds the history kept in the entry.
const maxClaims = 32

func decodeEntry(data []byte, rev uint64) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("group entry revision %d: %w", rev, err)
	}
	e.Revision = rev
	return e, nil
}

func (e Entry) encode() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // an Entry always marshals
	}
	return b
}

// claimed returns the entry as claimed by node at the next epoch.
func (e Entry) claimed(node, address string, fence uint64, now time.Time) Entry {
	n := Entry{
		Epoch: e.Epoch + 1, Owner: node, Address: address, Fence: fence,
		Claims:  append(append(snapshot.Claims{}, e.Claims...), snapshot.Claim{Epoch: e.Epoch + 1, Fence: fence}),
		Renewed: now.UTC(),
	}
	if len(n.Claims) > maxClaims {
		n.Claims = n.Claims[len(n.Claims)-maxClaims:]
	}
	return n
}
