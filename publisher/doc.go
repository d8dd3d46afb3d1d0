// Package publisher writes session snapshots to the session stream: what a
// primary does after every interaction.
//
// # Guarantees
//
// In sync mode (Publish), an Ack means JetStream has stored the snapshot:
// an interaction answered after its Ack is never lost. A publish that fails
// leaves the stream as it was, or says that it could not tell
// (ErrUnknownOutcome), in which case the session's next publish reads the
// stream before writing; the session follows the stream, never a guess.
//
// One writer per session: publishes of a session are serialized, and each
// carries the stream sequence of the session's previous message as its
// expected last subject sequence, so a write from a primary that lost the
// group, or from a stale view of the session, is refused by the stream
// itself. When the newest message on a subject is fenced (written by a
// primary that had already lost the group), the new owner publishes over
// it. The same expectation makes a retry whose first attempt landed a
// conflict: the publisher reads the stream, finds its own bytes stored and
// reports them (Ack.Duplicate), so a snapshot is never stored twice by a
// retry and no Nats-Msg-Id (and no work in the server's duplicate window)
// is needed.
//
// In async mode (PublishAsync), publishes of different sessions proceed
// concurrently, at most MaxPending sessions at a time (beyond that,
// PublishAsync blocks: backpressure); a session's later snapshot replaces
// its queued one, since only the newest matters. Outcomes are reported to
// OnAsyncError. The loss window: a snapshot accepted by PublishAsync is
// lost if the node dies before its ack, so at most the latest interaction
// of each of MaxPending sessions (plus their queued successors) can be
// lost, and only in async mode.
package publisher
