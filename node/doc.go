// Package node is the HTTP side of understudy: a primary that serves a
// multi-step application to browsers and replicates after every
// interaction, and a backup that, once promoted, serves the same way. It is
// also the public API for running your own application: build a Config,
// a model.Registry and a model.Resolver, and Run a Node.
//
// # Guarantees
//
// In the default sync mode an interaction is answered only after its
// snapshot is acknowledged by JetStream and while the node's lease is
// valid; otherwise the node answers 503 and the session in memory stays as
// the stream holds it. Requests of one session are handled one at a time.
// Each page carries the interaction sequence it was rendered at (a hidden
// field and the Understudy-Seq header); a submission made at a stale
// sequence — a back button, a double submit, a gateway's retry after a
// failover — is never applied twice: the node answers with the session's
// current page.
//
// A session exists from its first interaction: a GET gives the browser a
// candidate id in its cookie (HttpOnly, SameSite=Lax, Secure under TLS),
// and the first POST creates the session under that id, so a retried first
// interaction finds the session it created. New sessions are refused (503)
// beyond a cap and rate-limited per client; existing sessions are never
// affected. Finished and idle sessions are ended with a tombstone, and
// their history is purged from the stream once Config.Retention has
// passed. An operator can erase a session at once (EraseRequest, sent by
// replay erase): the primary drops it, tombstones it and purges it.
//
// A session whose saved state cannot be restored after a takeover (its
// newest message does not open, decode or fit the registered applications)
// is quarantined: its user, and only that user, gets a page that says so,
// and the error naming the session is logged. Bad input never stops a
// node: a cookie that is not a session id, an oversized body, a stale
// sequence or a form from another site gets a clear refusal.
//
// Logs never carry a value a user typed.
//
// # Load and the copy of the stream
//
// A node works on at most Config.MaxInFlight requests to the application
// at once; the others wait, a bounded number, up to Config.AdmissionWait,
// then get 503 busy before anything is applied (a gateway sends them again
// later). The group membership renews the lease on a NATS connection of
// its own, so that renewals never queue behind snapshots; the data
// connection still counts as the member's own (group.Member.Watch).
//
// A primary does not consume its own stream: its copy (the subscriber) is
// paused while it serves and is handed every message the node stores, and
// it resumes, with a catch-up, when the node is demoted. A session a
// client holds that the paused copy does not know is looked for in the
// stream before it is called absent. After a promotion the held sessions
// are materialized in the background, giving way to requests; the sweep
// ends the ones that idled or finished long enough ago, in memory or held,
// eight at a time.
//
// # Mixed builds
//
// During a rolling deploy the members of a group run different builds. A
// node announces in its heartbeats the application versions its registry
// holds; a primary publishes a session only on versions every live member
// (heard from within six heartbeat periods) announces, wherever a
// registered migration leads to one: new sessions start on the newest such
// version, and a running session migrates to it at its next interaction,
// after its input was applied at the version its page was rendered at (see
// model.Engine.Migrate). A session no migration can bring to a version a
// live member reads is published as it is, counted and logged: refusing
// would fail its user now, for a member that may never take over.
//
// # Pages
//
// The generic pages say in their markup what the server checks and how a
// browser can help (see model.PageField): a field's type, autocomplete
// token, lengths, pattern and bounds, its hint and error tied to it with
// aria-describedby, an error summary at the top of a page that refused its
// answers and "Error: " before its title. Every page after the first has a
// Back button, and a review page (model.Review) a Change button per
// section: forms that post _action=back, or _action=change with _change
// set to the section, with the page's _seq and _csrf. They are
// interactions like an answer (model.Engine.Back and Change): applied,
// replicated and only then answered, so a step back survives a failover
// and a stale one is never applied twice. A JSON client sends the same
// fields. A stale or double submission is answered with the current page
// and a notice that it was not applied again.
package node
