package protocol

import (
	"errors"
	"fmt"
	"time"

	"understudy/internal/bugs"
)

// Defaults for Config.
const (
	DefaultLease           = 300 * time.Millisecond
	DefaultPingAttempts    = 8
	DefaultPingSpacing     = 5 * time.Millisecond
	DefaultFailoverTimeout = 20 * time.Second
	// DefaultRetryWait is the first pause before a claim or release is
	// tried again after an attempt without an answer; pauses double up to
	// MaxRetryWait.
	DefaultRetryWait = 10 * time.Millisecond
	MaxRetryWait     = 500 * time.Millisecond
)

// Config configures a member's core.
type Config struct {
	// Node is this member's name; Address is where it serves HTTP.
	Node    string
	Address string
	// Lease is how long a landed write keeps the primary's lease, counted
	// from when its first attempt was sent. Default DefaultLease.
	Lease time.Duration
	// Margin is what a backup waits beyond the lease before it claims, to
	// cover clock-rate drift and delivery delay. Default Lease/6.
	Margin time.Duration
	// RenewEvery spaces renewals. Default Lease/3.
	RenewEvery time.Duration
	// PingAttempts bounds the fast path's questions to a silent node, and
	// PingSpacing spaces them. Defaults DefaultPingAttempts and
	// DefaultPingSpacing.
	PingAttempts int
	PingSpacing  time.Duration
	// FailoverTimeout bounds a takeover started by a signal. Default
	// DefaultFailoverTimeout.
	FailoverTimeout time.Duration
	// RetryWait is the first pause before a claim or release attempt
	// without an answer is sent again. Default DefaultRetryWait.
	RetryWait time.Duration
	// Bugs reintroduce known defects (those of the core: AnswerAnyEpoch,
	// LeaseFromRetry, LooseRelease). Zero in production.
	Bugs bugs.Set
}

// Validate checks the configuration.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Node == "":
		return errors.New("protocol: node name missing")
	case c.Lease <= 0 || c.Margin < 0 || c.RenewEvery <= 0 || c.RenewEvery >= c.Lease:
		return fmt.Errorf("protocol: lease %v, margin %v, renewals every %v: want a positive lease renewed more often than it lasts", c.Lease, c.Margin, c.RenewEvery)
	case c.PingAttempts < 1 || c.PingSpacing < 0 || c.FailoverTimeout <= 0 || c.RetryWait <= 0:
		return errors.New("protocol: ping attempts, failover timeout and retry wait must be positive")
	}
	return nil
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Margin == 0 {
		c.Margin = c.Lease / 6
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = c.Lease / 3
	}
	if c.PingAttempts == 0 {
		c.PingAttempts = DefaultPingAttempts
	}
	if c.PingSpacing == 0 {
		c.PingSpacing = DefaultPingSpacing
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = DefaultFailoverTimeout
	}
	if c.RetryWait == 0 {
		c.RetryWait = DefaultRetryWait
	}
	return c
}
