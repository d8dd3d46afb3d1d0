// Package subscriber is a backup's side of replication: it consumes the
// session stream and holds the newest valid snapshot of every live
// session, ready for a promotion; and, for a cold standby that holds
// nothing, it reads them from the stream when it takes over (Reader).
//
// # Guarantees
//
// A backup holds exactly the newest valid snapshot of every live session:
//
//   - valid means the message passed snapshot.ParseMeta (its subject,
//     headers, Nats-Msg-Id and payload envelope agree) and the fence rule
//     does not reject it (Config.Fence);
//   - newest means highest stream sequence. The store compares stream
//     sequences only, so the result does not depend on the order or the
//     number of deliveries: history redelivered after a consumer reset, or
//     read out of order, cannot replace a newer snapshot;
//   - live means its newest valid message is not a tombstone. An ended
//     session is dropped, and its tombstone's sequence is remembered (the
//     last Config.MaxEnded of them) so an older snapshot read out of order
//     cannot bring it back.
//
// A catch-up delivers only each session's newest message. When that
// message is fenced, the newest valid snapshot is below it and was never
// delivered, so the subscriber reads it from the stream leader
// (snapshot.Latest). When a new claim fences snapshots already held,
// Refence replaces them the same way; until it has, Get and Range do not
// return them.
//
// A message that fails validation quarantines its session, never the
// subscriber: the error names the session and what was wrong, it is logged
// (never with payload bytes) and passed to Config.OnQuarantine, the
// session's previous good snapshot stays held, and a later valid snapshot
// clears the quarantine. Every other session is unaffected. A message
// whose subject is not a session's is counted (Stats.BadSubjects) and
// logged.
//
// Payloads are held as bytes, copied to slices of exactly their size, and
// never decoded here: decoding happens once, at promotion. Per session the
// store keeps about 96 bytes of metadata besides its map slot and id.
//
// # Catch-up and progress
//
// Start creates an ordered consumer that delivers each session's newest
// message (DeliverLastPerSubject), then every new one. nats-server can
// skip messages of such a first pass (see catchup.go), so a catch-up
// counts the subjects it was given, compares them with the stream's, and
// reads any it missed from the stream leader before it reports CaughtUp.
//
// CaughtUp reports that everything in the stream when Start created the
// consumer has been handled; DrainTo waits until everything up to a stream
// sequence has been (what a promoting backup does before it claims the
// group: "read the stream's last sequence and drain to it"). Lag is the
// pending count of the last message delivered.
//
// # A primary's copy
//
// A primary pauses its Subscriber (Pause): it needs no copy of its own
// snapshots from the server, and consuming them cost it CPU and the
// server a delivery per interaction. Its publisher hands every message it
// stored to Own instead, so the copy stays the truth of every session the
// node writes, tombstones included, and a promotion, a demotion or a
// lookup of a session no longer in memory finds what it would have found
// by consuming. Resume, at demotion, starts a consumer again with a
// catch-up, which brings what others wrote meanwhile (the new primary).
//
// # Reads
//
// Reads made for correctness (Refence, the catch-up read under a fenced
// snapshot, Reader, DrainTo's check) go to the stream leader, never to a
// direct get that a lagging replica may answer.
package subscriber
