package shard

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	"understudy/model"
)

// DefaultShards is the number of shards a stream is created with.
// Changing it is a migration: every session's shard changes.
const DefaultShards = 64

// Of returns the shard of session id among shards.
func Of(id model.SessionID, shards int) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(mix(h.Sum64()) % uint64(shards))
}

// weight is node's rendezvous weight for shard k.
func weight(node string, k int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(k), 10))
	return mix(h.Sum64())
}

// mix is a 64-bit finalizer (SplitMix64's): FNV's low bits are weak for
// short keys that differ only at their end, as node names and shard
// numbers do.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Rank returns nodes in shard k's order of preference: its preferred
// owner first. Ties (equal weights) are broken by name, so the order is a
// function of the set of nodes alone, whatever order they are given in.
func Rank(k int, nodes []string) []string {
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b string) int {
		wa, wb := weight(a, k), weight(b, k)
		switch {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		}
		return cmpString(a, b)
	})
	return slices.Compact(out)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Placement is one shard's preferred owner and backups.
type Placement struct {
	Owner   string
	Backups []string
}

// Place returns the placement of each of shards over nodes, with up to
// backups backups each (fewer when there are not enough other nodes).
func Place(shards int, nodes []string, backups int) ([]Placement, error) {
	if shards < 1 {
		return nil, fmt.Errorf("shard: %d shards, want at least 1", shards)
	}
	if backups < 0 {
		return nil, fmt.Errorf("shard: %d backups, want 0 or more", backups)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("shard: no nodes to place %d shards on", shards)
	}
	out := make([]Placement, shards)
	for k := range out {
		r := Rank(k, nodes)
		out[k] = Placement{Owner: r[0], Backups: r[1:min(len(r), 1+backups)]}
	}
	return out, nil
}
