// Package group makes exactly one node of a replication group the primary
// at any moment, and lets a backup take over safely and fast. It follows
// the contract in DESIGN.md, "Failover, leases and fencing".
//
// # The group entry and the lease
//
// The group lives in one entry of the groups key-value bucket: epoch,
// owner, the owner's HTTP address, the fence sequence, and the history of
// claims (epoch and fence of each failover). The primary holds the entry as
// a lease and renews it by compare-and-set every Lease/3. Before it answers
// anything it checks Valid: the lease is valid for Lease, counted by its own
// monotonic clock from when it sent the first attempt of its newest write
// that landed, and never after a disconnect or reconnect until a renewal
// has succeeded since. A backup claims only after it has seen no renewal for Lease plus Margin by
// its own clock. With bounded clock-rate drift, two primaries never answer
// at once.
//
// # Guarantees
//
// The decisions are made by the pure core in group/protocol; this package
// drives it with NATS, a clock and goroutines. With clock rates that drift
// apart by less than Margin over a Lease:
//
//   - At most one member holds a valid lease at any instant. A landed
//     write's lease counts from its first attempt's send time, whichever
//     attempt landed, so a claim or renewal whose answer was lost or late
//     never stretches the lease beyond what the others waited out.
//   - MayAnswer is the answer rule: an interaction applied at epoch e may be
//     answered only while the lease is valid and e is the current epoch. A
//     valid lease of a later epoch is not enough.
//   - Entries are applied in revision order: a redelivered older revision
//     never demotes a newer primary or rolls its claims back.
//   - A claim's fence is a stream sequence read after the previous owner's
//     lease was waited out (or its crash proven, or its release seen), and
//     after the drain to it: every snapshot that owner answered for is at
//     or below the fence.
//   - Release reports success only once a released entry of this member's
//     has landed.
//   - The crash fast path is taken only on a NATS server known to be
//     standalone (see broker.AskStandalone).
//
// The simulator (package sim) checks these, and the node's side of the
// contract, over millions of seeded schedules.
//
// # Failover
//
// A failover signal is a NATS request on <prefix>.control.failover. Every
// backup receives it; each waits out the lease (or, with a single NATS
// server and reason "unreachable", confirms the primary's connection is gone
// by a "no responders" answer on its control subject), reads the stream's
// last sequence, drains its copy of the stream to it, and claims the entry
// by compare-and-set: epoch+1, itself, its address, fence = the drained
// sequence. Exactly one wins and replies with what it took over; the others
// reply with the owner once they see it. A signal for a node that is no
// longer the owner is answered with the current owner.
//
// # Fencing
//
// Fence returns the group's claims as a snapshot.Fence: a snapshot of an
// older epoch stored after a later epoch's fence sequence was written by a
// primary that had lost the group, and every reader ignores it.
//
// # Heartbeats and versions
//
// Every member publishes a heartbeat on <prefix>.hb.<node> (role, lag,
// sessions held, caught up) with the application versions it can
// materialize (Config.Apps). Monitor.Versions says what every member heard
// from within a window announces: a primary moves sessions only to
// versions all of them can rebuild.
//
// # Graceful handover
//
// Release marks the entry released; backups watching it claim at once
// (still draining first), without waiting out the lease.
package group
