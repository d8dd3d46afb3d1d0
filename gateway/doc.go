// Package gateway is the reverse proxy in front of a replication group. It
// routes every request to the group's owner, read from the group entry
// (watched, so routing follows a promotion at once), notices a dead
// primary, sends the failover signal, and retries the interrupted request
// on the new primary. The person at the browser sees neither the failure
// nor the failover.
//
// # Guarantees
//
// A request is retried only while it can be retried safely: its body is
// buffered (up to Config.MaxBody), and a node applies a page's submission
// at most once (the interaction sequence makes a retry of an applied
// interaction show the current page instead). A retry is made when the
// owner refuses or resets the connection, when it answers 503 because it
// is not (or no longer) the primary, and when the owner changes while a
// request waits on it (a paused primary). Requests that arrive during a
// failover wait for it, bounded by Config.WaitFor, instead of failing.
//
// # Overload
//
// At most Config.MaxInFlight requests go to the owner at once; the others
// wait in the gateway for a place. A request the owner turns away as busy
// (at its own bound, see node.Config.MaxInFlight) is sent again when a
// place may be free there (an attempt came back from it) or after a
// doubling pause. Nothing is signalled: a busy primary is alive. A
// request kept waiting for Config.BusyFor is answered 503 busy, with
// Retry-After: the load the machine cannot carry is shed at the door, and
// the answered ones are bounded by BusyFor plus the time of an
// interaction.
//
// # Detection
//
// The primary is presumed dead when a connection to it is refused or
// reset (the failover signal says "unreachable": with a single NATS
// server a backup confirms and takes over without waiting out the lease),
// when its lease renewals stop for a lease plus a margin, or when its
// health checks fail several times in a row (both "lease": backups wait out
// the lease). Signals for one failed node are sent once however many
// requests notice it, and any number of gateways may signal at once.
package gateway
