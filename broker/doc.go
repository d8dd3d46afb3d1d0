// Package broker owns understudy's use of NATS: connecting to it, running
// it in-process, naming its subjects, and provisioning the session stream
// and the groups bucket. Every binary goes through it, so these rules hold
// everywhere:
//
//   - Connect keeps trying until NATS answers and then reconnects forever
//     with jittered backoff; with Config.NoReconnectBuffer (which nodes
//     set) a publish made while disconnected fails at once and is never
//     delivered later. Credentials are never logged.
//   - Anything that becomes part of a subject (a session id, a node name,
//     the prefix) is checked by ValidToken first, so input from a browser
//     cannot address another subject or a wildcard.
//   - EnsureStream and EnsureBucket are idempotent and never change an
//     existing stream or bucket: one whose settings would change what is
//     stored or acknowledged is reported as ErrIncompatibleStream or
//     ErrIncompatibleBucket, naming the setting and both values.
//   - Storage is always JetStream file storage. The embedded server
//     fsyncs every write before acknowledging it unless configured
//     otherwise, so an acknowledged snapshot survives a machine crash.
//   - The session stream never allows direct get: reads made for
//     correctness go to the stream leader, never to a replica that may lag.
//
// Names, for the default prefix "understudy":
//
//	UNDERSTUDY_SESSIONS          stream; subjects understudy.sess.>
//	understudy.sess.<session>    one subject per session, last 16 snapshots
//	understudy.hb.<node>         backups' heartbeats
//	understudy.control.failover  the failover signal (a request)
//	understudy.node.<node>       each node's own control subject
//	understudy_groups            key-value bucket, one entry per group
//
// The embedded server (Embedded) is what the gateway runs in the local
// deployment, since the gateway is the process that outlives node
// failures; in production every process connects to an external NATS, one
// server or a cluster. Package brokertest starts servers and clusters for
// tests in other packages.
package broker
