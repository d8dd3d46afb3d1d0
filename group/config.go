package group

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"understudy/broker"
	"understudy/group/protocol"
	"understudy/internal/bugs"
)

// Defaults for Config.
const (
	DefaultGroup     = "main"
	DefaultLease     = protocol.DefaultLease
	DefaultHeartbeat = 500 * time.Millisecond
	// DefaultPingTimeout bounds each of the fast path's questions to the
	// failed node's control subject. "No responders" comes back at once; a
	// node that stays silent through every question may be alive (paused),
	// and the lease decides. Short, and asked several times: a process
	// killed a moment ago is often still subscribed for a few milliseconds,
	// until the server reads its closed socket.
	DefaultPingTimeout = 20 * time.Millisecond
	// DefaultFailoverTimeout covers a NATS cluster's leader election (a
	// few seconds) during a failover.
	DefaultFailoverTimeout = protocol.DefaultFailoverTimeout
)

// FastPath says whether a crashed primary may be replaced without waiting
// out its lease (DESIGN.md, "Fast path for a crash").
type FastPath int

const (
	// FastPathAuto uses the fast path only when the server this node is
	// connected to says it is standalone (broker.AnswerStandalone: the
	// gateway's embedded server does): with a cluster, or a server with
	// leafnode or gateway connections, interest seen from one server can
	// be stale.
	FastPathAuto FastPath = iota
	// FastPathOff always waits out the lease.
	FastPathOff
	// FastPathOn uses the fast path whatever NATS looks like. Only for a
	// single server without leafnode, route or gateway connections.
	FastPathOn
)

// Config configures a node's membership of a group.
type Config struct {
	// Subjects names the control subjects and the bucket.
	Subjects broker.Subjects
	// Group is the group's key in the bucket. Default DefaultGroup.
	Group string
	// Node is this node's name; Address is where it serves HTTP.
	Node    string
	Address string
	// Lease is how long a renewal keeps the primary's lease. Default
	// DefaultLease; renewals go every Lease/3.
	Lease time.Duration
	// Margin is what a backup waits beyond the lease before it claims, to
	// cover clock-rate drift and delivery delay. Default Lease/6.
	Margin time.Duration
	// FastPath selects the crash fast path. Default FastPathAuto.
	FastPath FastPath
	// Heartbeat is how often the node publishes its heartbeat. Default
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Apps are the application versions this node can materialize,
	// "name@version": announced in its heartbeats, so that a primary
	// moves a session to a version only once every live member can
	// rebuild it (see Monitor.Versions). Sorted by withDefaults.
	Apps []string
	// PingTimeout bounds the fast path's ping. Default DefaultPingTimeout.
	PingTimeout time.Duration
	// FailoverTimeout bounds one failover attempt (lease wait, drain,
	// claim); a failed attempt answers with its error, and the next signal
	// tries again. Default DefaultFailoverTimeout.
	FailoverTimeout time.Duration
	// Logger receives role changes and failovers. Default slog.Default().
	Logger *slog.Logger
	// Bugs reintroduce known defects in the protocol core, for the tests
	// that show they are found. Never set outside tests.
	Bugs bugs.Set
}

// protocol returns the core's configuration.
func (c Config) protocol() protocol.Config {
	return protocol.Config{Node: c.Node, Address: c.Address, Lease: c.Lease, Margin: c.Margin,
		FailoverTimeout: c.FailoverTimeout, Bugs: c.Bugs}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := broker.ValidToken(c.Group); err != nil {
		return fmt.Errorf("group name: %w", err)
	}
	if err := broker.ValidToken(c.Node); err != nil {
		return fmt.Errorf("node name: %w", err)
	}
	if c.Lease < 30*time.Millisecond {
		return fmt.Errorf("lease %v: at least 30ms", c.Lease)
	}
	if c.Margin < 0 || c.Heartbeat <= 0 || c.PingTimeout <= 0 {
		return fmt.Errorf("margin, heartbeat and ping timeout must be positive")
	}
	return c.protocol().Validate()
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Margin == 0 {
		c.Margin = c.Lease / 6
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = DefaultFailoverTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Apps = slices.Sorted(slices.Values(c.Apps))
	return c
}
