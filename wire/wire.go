// Package wire is the contract between a node and the gateways in front of
// it: the headers they exchange and the reasons a node gives for a 503.
// Both sides import it, so that neither spells a header the other does
// not read.
package wire

// Headers a node sets on its answers.
const (
	HeaderNode        = "Understudy-Node"
	HeaderRole        = "Understudy-Role"
	HeaderEpoch       = "Understudy-Epoch"
	HeaderSeq         = "Understudy-Seq"
	HeaderStale       = "Understudy-Stale"
	HeaderUnavailable = "Understudy-Unavailable" // why a 503: see the Unavailable reasons
	HeaderCSRF        = "Understudy-Csrf"
)

// HeaderRequest is set by a gateway on every request it forwards: an id
// drawn once per client request and kept by every retry of it. A node
// derives the id of a session created by a first interaction without a
// cookie from it, so that a retry finds the session its first attempt
// created instead of starting a second one. A gateway replaces whatever a
// client sent in it.
const HeaderRequest = "Understudy-Request"

// Reasons a node answers 503, in HeaderUnavailable. A gateway retries
// backup, draining, lease, broker, retry and busy on the group's owner;
// capacity is the client's to retry.
const (
	UnavailableBackup   = "backup"   // not the primary
	UnavailableDraining = "draining" // handing the group over
	UnavailableLease    = "lease"    // its lease lapsed or it lost the group
	UnavailableBroker   = "broker"   // the answer could not be replicated
	UnavailableCapacity = "capacity" // too many sessions
	// UnavailableBusy: the node works on as many requests as it may and
	// none left its place in time; nothing was applied. A gateway retries
	// on the same owner after a short pause, without signalling anything:
	// a busy primary is alive.
	UnavailableBusy = "busy"
	// UnavailableRetry: the interaction was stored but applied under an
	// epoch that ended before it could be answered; the node is the
	// primary of the new one and answers a retry at once. A gateway
	// retries on the same owner without waiting for a change.
	UnavailableRetry = "retry"
)

// UnavailableGateway is the reason a gateway gives for a 503 of its own.
const UnavailableGateway = "gateway"
