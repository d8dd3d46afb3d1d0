package gateway

import (
	"fmt"
	"log/slog"
	"time"

	"understudy/broker"
	"understudy/group"
)

// Defaults for Config.
const (
	DefaultMaxBody     = 1 << 20
	DefaultWaitFor     = 30 * time.Second
	DefaultHealthEvery = 250 * time.Millisecond
	DefaultHealthFails = 3
	DefaultAttempt     = 30 * time.Second
	DefaultBusyFor     = 2 * time.Second
	DefaultMaxInFlight = 256
)

// Config configures a Gateway.
type Config struct {
	// Subjects and Group say which group to route to.
	Subjects broker.Subjects
	Group    string
	// Lease is the group's lease; the gateway signals a failover when no
	// renewal has been seen for Lease plus Margin. Defaults as in package
	// group.
	Lease  time.Duration
	Margin time.Duration
	// MaxBody bounds the request body buffered for a retry; larger bodies
	// are refused (413). Default DefaultMaxBody.
	MaxBody int64
	// WaitFor bounds how long a request waits for a failover, or for NATS
	// to elect a leader, before it fails with 503. Default DefaultWaitFor:
	// a NATS cluster's elections take seconds.
	WaitFor time.Duration
	// Attempt bounds one attempt at the owner. Default DefaultAttempt.
	Attempt time.Duration
	// BusyFor bounds how long a request the owner turns away as busy (at
	// its bound of requests in flight) is held and sent again, before the
	// gateway answers 503 busy with Retry-After: the load the machine
	// cannot carry is shed there, and no request waits longer. Default
	// DefaultBusyFor.
	BusyFor time.Duration
	// MaxInFlight bounds the requests the gateway sends to the owner at
	// once (a window that shrinks while the owner answers busy, and grows
	// back to it); the others wait in the gateway for a place, oldest
	// first (for BusyFor at most, then 503 busy). Unbounded, an overload became thousands of
	// connections to the owner, each accepted, parsed and turned away,
	// and the owner's lease starved. Several times the node's own bound
	// (-max-in-flight), so that its queue holds work. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// HealthEvery is how often the owner's /healthz is checked, and
	// HealthFails how many failures in a row count as dead. Defaults
	// DefaultHealthEvery and DefaultHealthFails; HealthEvery < 0 turns
	// health checks off.
	HealthEvery time.Duration
	HealthFails int
	// Logger receives failovers and warnings. Default slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := broker.ValidToken(c.Group); err != nil {
		return fmt.Errorf("gateway: group: %w", err)
	}
	if c.MaxBody < 1 || c.WaitFor <= 0 || c.Attempt <= 0 || c.BusyFor <= 0 || c.HealthFails < 1 || c.MaxInFlight < 0 {
		return fmt.Errorf("gateway: max body, wait, attempt, busy wait, max in flight and health fails must be positive")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = group.DefaultGroup
	}
	if c.Lease == 0 {
		c.Lease = group.DefaultLease
	}
	if c.Margin == 0 {
		c.Margin = c.Lease / 6
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.WaitFor == 0 {
		c.WaitFor = DefaultWaitFor
	}
	if c.BusyFor == 0 {
		c.BusyFor = DefaultBusyFor
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Attempt == 0 {
		c.Attempt = DefaultAttempt
	}
	if c.HealthEvery == 0 {
		c.HealthEvery = DefaultHealthEvery
	}
	if c.HealthFails == 0 {
		c.HealthFails = DefaultHealthFails
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
