package cbor

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"understudy/model"
)

// ordered gives a pool table's ids in ascending order, from its bit set
// when every id is below the session's NextID and by sorting otherwise (a
// session built by hand); the encoder reuses its buffers between calls.
func TestOrdered(t *testing.T) {
	e := NewEncoder()
	rapid.Check(t, func(t *rapid.T) {
		ids := rapid.SliceOfDistinct(rapid.Uint32Range(0, 300), func(x uint32) uint32 { return x }).Draw(t, "ids")
		next := model.StepID(rapid.Uint32Range(0, 320).Draw(t, "next"))
		m := map[model.StepID]bool{}
		var want []model.StepID
		for _, id := range ids {
			m[model.StepID(id)] = true
			want = append(want, model.StepID(id))
		}
		slices.Sort(want)
		if got := ordered(e, m, next); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("ordered(%v, next %d) = %v, want %v", ids, next, got, want)
		}
	})
}
