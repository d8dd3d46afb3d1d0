package fencing_test

import (
	"encoding/json"
	"testing"

	"understudy/fencing"
)

// TestClaimsJSON: claims read as the rest of the group entry does, in
// lower case (snapshot.Claims, group entries and exports carry them).
func TestClaimsJSON(t *testing.T) {
	b, err := json.Marshal(fencing.Claims{{Epoch: 1, Fence: 0}, {Epoch: 2, Fence: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[{"epoch":1,"fence":0},{"epoch":2,"fence":100}]`; got != want {
		t.Errorf("claims as JSON: %s, want %s", got, want)
	}
	var back fencing.Claims
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 2 || back[1] != (fencing.Claim{Epoch: 2, Fence: 100}) {
		t.Errorf("read back: %v %v", back, err)
	}
}
