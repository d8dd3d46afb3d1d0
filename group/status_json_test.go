package group_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"understudy/group"
)

// TestStatusJSON: the group's status, as /understudy/group serves it,
// gives durations as people read them, and reads back.
func TestStatusJSON(t *testing.T) {
	st := group.Status{Group: "main", Exists: true, Epoch: 3, Owner: "a", LeaseAge: 312456789 * time.Nanosecond,
		Members: []group.MemberState{{Heartbeat: group.Heartbeat{Node: "b", Role: "backup", CaughtUp: true}, Age: 1500 * time.Millisecond}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"lease_age":"312ms"`, `"age":"1.5s"`, `"node":"b"`, `"caught_up":true`, `"epoch":3`, `"gone":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s: %s", want, b)
		}
	}
	var back group.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.LeaseAge != 312*time.Millisecond || back.Owner != "a" || len(back.Members) != 1 || back.Members[0].Age != 1500*time.Millisecond || back.Members[0].Node != "b" {
		t.Errorf("read back: %+v", back)
	}
}
