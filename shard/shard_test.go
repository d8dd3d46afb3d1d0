package shard_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"understudy/model"
	"understudy/shard"
)

func genNodes(t *rapid.T, min int) []string {
	return rapid.SliceOfNDistinct(rapid.StringMatching(`node-[a-z0-9]{1,6}`), min, 9, rapid.ID[string]).Draw(t, "nodes")
}

// TestPlacement: every shard has an owner among the nodes and as many
// distinct backups as there are other nodes, up to the number asked; the
// placement depends on the set of nodes, not on their order.
func TestPlacement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 1)
		shards := rapid.IntRange(1, 128).Draw(t, "shards")
		backups := rapid.IntRange(0, 3).Draw(t, "backups")
		p, err := shard.Place(shards, nodes, backups)
		if err != nil {
			t.Fatal(err)
		}
		shuffled := slices.Clone(nodes)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again, _ := shard.Place(shards, append(shuffled, shuffled[0]), backups)
		for k, pl := range p {
			if !slices.Contains(nodes, pl.Owner) {
				t.Fatalf("shard %d: owner %q is not a node", k, pl.Owner)
			}
			if want := min(backups, len(nodes)-1); len(pl.Backups) != want {
				t.Fatalf("shard %d: %d backups, want %d", k, len(pl.Backups), want)
			}
			seen := map[string]bool{pl.Owner: true}
			for _, b := range pl.Backups {
				if seen[b] || !slices.Contains(nodes, b) {
					t.Fatalf("shard %d: backups %v of owner %s: repeated, or not a node", k, pl.Backups, pl.Owner)
				}
				seen[b] = true
			}
			if again[k].Owner != pl.Owner || !slices.Equal(again[k].Backups, pl.Backups) {
				t.Fatalf("shard %d: placed %v, and %v with the nodes in another order", k, pl, again[k])
			}
		}
	})
}

// TestPlacementMovesOnlyWhatItMust: a node that leaves moves only the
// shards it owned, each to its first backup (read backwards: a node that
// joins takes shards, and no shard moves between the others).
func TestPlacementMovesOnlyWhatItMust(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 2)
		shards := rapid.IntRange(1, 128).Draw(t, "shards")
		before, _ := shard.Place(shards, nodes, 1)
		gone := rapid.SampledFrom(nodes).Draw(t, "leaves")
		rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == gone })
		after, _ := shard.Place(shards, rest, 1)
		for k := range before {
			switch {
			case before[k].Owner != gone && after[k].Owner != before[k].Owner:
				t.Fatalf("shard %d moved from %s to %s when %s left", k, before[k].Owner, after[k].Owner, gone)
			case before[k].Owner == gone && after[k].Owner != before[k].Backups[0]:
				t.Fatalf("shard %d of %s went to %s, not to its backup %s", k, gone, after[k].Owner, before[k].Backups[0])
			}
		}
	})
}

// TestOfSpreadsSessions: a session's shard is in range, the same every
// time, and random ids spread over the shards evenly.
func TestOfSpreadsSessions(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const shards, n = 64, 64_000
	counts := make([]int, shards)
	for range n {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		id := model.NewSessionID(b)
		k := shard.Of(id, shards)
		if k < 0 || k >= shards || shard.Of(id, shards) != k {
			t.Fatalf("session %s: shard %d, then %d", id, k, shard.Of(id, shards))
		}
		counts[k]++
	}
	// A thousand a shard on average; a fair hash stays within about 4
	// standard deviations (about 32) of it.
	lo, hi := slices.Min(counts), slices.Max(counts)
	if lo < 850 || hi > 1150 {
		t.Fatalf("sessions per shard from %d to %d, want about 1,000 each", lo, hi)
	}
}

func TestPlaceRejects(t *testing.T) {
	for _, c := range []struct {
		shards, backups int
		nodes           []string
	}{{0, 1, []string{"a"}}, {64, -1, []string{"a"}}, {64, 1, nil}} {
		if _, err := shard.Place(c.shards, c.nodes, c.backups); err == nil {
			t.Errorf("Place(%d, %v, %d): no error", c.shards, c.nodes, c.backups)
		}
	}
}
