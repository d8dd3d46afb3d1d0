// Package sim is a deterministic simulator of the failover protocol: the
// real protocol core (group/protocol) of several members, driven through a
// simulated bucket, session stream, network, gateway and clients, under
// faults, with the failover contract's invariants checked at every step.
// A run is reproducible from its seed.
//
// What is real and what is modelled: every decision of the lease, the
// claim, the takeover, the fence rule and the answer rule is made by the
// real code (protocol.Member, fencing.Claims). The bucket (compare-and-set
// by revision, a watch that delays, duplicates, reorders and redelivers),
// the stream (expected last subject sequence), the network (delays,
// losses, late answers), the clocks (rates that drift within the bound the
// margin covers) and the faults (pauses, crashes and restarts, lost and
// late acks) are simulated. The node's side (the session memory, what the
// copy of the stream holds, paused while the node serves and handed its
// own writes, the publisher's handling of a conflict) is a model of node/,
// subscriber/ and publisher/, with the same rules; the real-NATS tests of
// those packages stand beside it.
//
// Invariants, checked after every event:
//
//	I1 at most one member holds a valid lease at any instant, so at most
//	   one node answers for a session;
//	I2 every answered interaction is in the session's newest valid
//	   snapshot (and no client sees its session go back);
//	I3 no interaction is applied twice: the valid snapshots of a session
//	   have strictly increasing interaction sequences;
//	I4 no live session is answered as absent, ended or broken;
//	I5 once faults stop, every client is served again within the lease,
//	   the margin and a stated bound;
//	I6 a release reported done has landed.
//
// Planted bugs (internal/bugs) reintroduce defects the checks must find.
package sim
