// Package shard says which shard a session belongs to and which nodes
// should own and back up each shard: the placement of the sharded design
// (DESIGN.md, "Sharding"). It is pure and deterministic: every gateway and
// every node that knows the same live nodes computes the same placement,
// with no coordination.
//
// A session's shard is a hash of its id, so that any gateway routes a
// request without a lookup, an id minted before sharding has a shard too,
// and new sessions spread evenly over the shards without choosing.
//
// Placement is rendezvous (highest-random-weight) hashing: each shard
// ranks every node by a hash of the pair, the first is its preferred
// owner, the next ones its backups. When a node leaves, only the shards it
// held move, each to its next-ranked node; when one joins, it takes only
// the shards where it ranks first, about one in N, from whichever nodes
// held them.
package shard
