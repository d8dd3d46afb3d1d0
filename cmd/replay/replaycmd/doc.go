// Package replaycmd is the replay and inspection tool: the body of
// cmd/replay, in a package of its own so that a team can build the same
// tool around its own applications. It answers "what did this user's
// session look like at the moment it broke?" and "who is primary right
// now?" from NATS alone: it connects by URL (with the usual -nats-* flags
// for authentication and TLS), reads the session stream and the groups
// bucket, and never opens a server's data directory. It writes to NATS only
// in import and erase.
//
// # Commands
//
//	status                  the group: owner, epoch, lease, fence, claims, members' heartbeats
//	list                    sessions with their newest valid snapshot and current step
//	history <session>       every kept snapshot of a session; fenced ones marked
//	show <session>          one snapshot: headers, envelope, values, step tree; -json, -diag
//	diff <session> <a> <b>  steps added/removed and values changed between two snapshots
//	preview <session>       the page the user saw at a snapshot, as text or -html
//	tail [session]          follow snapshots as they arrive
//	export <session> <file> a session's kept history as JSON lines, for a bug report
//	import <file>           an export into another NATS
//	erase <session>         erase a session everywhere (operator permissions)
//	check                   preflight of this build: every live session as it is, migrated, or failing
//	diag [file]             CBOR on stdin as diagnostic notation (for nats --translate)
//
// Every command prints text for people by default and JSON with -json, and
// exits non-zero on error: a session that does not exist (ErrNoSession), a
// snapshot older than the kept history (ErrDiscarded), a malformed session
// id (checked with model.ParseSessionID before it becomes part of a
// subject), and a snapshot that does not decode (ErrUndecodable: show still
// prints its headers and raw diagnostic notation).
//
// Snapshots are judged by the fence rule with the claims of the group
// entry (-group), as every reader does: a fenced snapshot is marked, and
// never picked by default.
//
// # Your own replay binary
//
// The tool rebuilds sessions (show's values, diff, preview) with the
// application definitions it is given, so a team builds it with its own:
//
//	package main
//
//	import (
//		"understudy/cmd/replay/replaycmd"
//
//		"example.com/quote/app" // your applications
//	)
//
//	func main() {
//		replaycmd.Run(replaycmd.Config{Name: "quote-replay", Registry: app.Registry()})
//	}
//
// With no Config.Resolver, preview resolves entity references from the
// database -db names, through package entity, as the nodes do; set
// Resolver to use your own. Sessions of applications the registry does not
// hold are still listed and shown, from their raw step states.
//
// # The preflight of a build
//
// check answers "can the build I am about to deploy rebuild every live
// session?" before it is deployed: built with that build's registry, it
// reads the newest valid snapshot of every live session
// (subscriber.Reader.ReadAll: read-only), materializes each with the
// registry (entity references taken as they are, unless -db or -mem), and
// migrates it as a node of that build would once every member runs it
// (model.Engine.Migrate), without writing anything. It reports per
// application version how many sessions would run as they are, migrate
// (and to what), or fail, with the first error of each kind and the id of
// every session that would fail (-json; -failed in text), and exits 1
// (ErrWouldFail) if any would fail. status shows the versions each member
// announces it can materialize.
//
// # Sealed payloads
//
// When the nodes seal snapshots (-snapshot-key, see snapshot.Keyring),
// every command that reads them takes -key with the same key file: it
// checks each message's seal with it and opens the payload in payload
// (read.go), the one place a message's bytes become a snapshot's, before
// cbor.Decode and before diagnostic notation. Without -key a sealed
// snapshot is listed from its headers and marked bad ("sealed with key
// ..., and this reader was given no key file").
package replaycmd
