// Package protocol is the failover protocol's core: a deterministic state
// machine, like etcd raft's RawNode, that decides everything about a
// member's lease and the group's entry (lease validity, when to renew, the
// lapse a backup waits out, the claim, the crash fast path, which entry
// wins, demotion, the answer rule) from events, and returns actions. It
// has no NATS, no clock and no goroutines: its driver (package group)
// reports every event with the time it happened at on the node's
// monotonic clock (Mono), and carries out the actions (Write, Ping,
// ReadLastSeq, Drain, Promote, Demote, ClaimsChanged, Reply, Done).
//
// Because it is pure, the simulator (package sim) runs it through millions
// of interleavings, and its tests are tables of events and actions.
package protocol
