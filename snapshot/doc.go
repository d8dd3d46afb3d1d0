// Package snapshot defines a snapshot as a message on the session stream:
// the subject it goes to, the headers that let a reader judge it without
// decoding it, the fence rule, and how to read a session's
// newest valid snapshot from the stream leader.
//
// The publisher (which writes snapshots) and the subscriber (which holds
// them) never import each other; this package is what they agree on.
//
// # Guarantees
//
// A message's Meta is checked against its subject and its payload's
// envelope: a snapshot of one session published on another session's
// subject, or whose headers disagree with its bytes, is refused with an
// error that names the session.
//
// The fence rule: every snapshot carries the epoch of the node that wrote
// it. A snapshot of epoch e stored after the fence sequence of a later
// epoch was written by a primary that had already lost the group; every
// reader ignores it (Fenced). Latest walks back over fenced snapshots
// through each message's Understudy-Prev header, so a reader finds the
// newest valid snapshot even when fenced ones sit on top of it.
//
// # Sealed payloads
//
// Payloads may be sealed (Sealer; Keyring is AES-256-GCM with rotating
// keys): the publisher seals after encoding, the Understudy-Key header
// names the key. A seal is bound
// to its message's session, epoch, sequence and tombstone flag, so a
// sealed payload moved to another subject, or whose headers changed, is
// refused like any bad message (ErrBadMessage wrapping ErrSealed): its
// session is quarantined, nothing else is affected. Stored.Data is always
// the payload as stored; Open gives the plaintext.
package snapshot
