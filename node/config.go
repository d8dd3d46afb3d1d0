package node

import (
	"fmt"
	"html/template"
	"log/slog"
	"time"

	"understudy/broker"
	"understudy/group"
	"understudy/internal/bugs"
	"understudy/snapshot"
)

// Role is how a node starts.
type Role string

// Roles a node can start in.
const (
	// RolePrimary claims the group if it is free or its owner's lease has
	// lapsed; if another live node holds it, the node runs as a backup.
	RolePrimary Role = "primary"
	// RoleBackup follows the stream and serves once promoted.
	RoleBackup Role = "backup"
)

// Replication is how a primary replicates an interaction.
type Replication string

// Replication modes.
const (
	// Sync answers an interaction only after its snapshot is acknowledged
	// by JetStream: nothing answered is lost. The default.
	Sync Replication = "sync"
	// Async answers at once and publishes in the background: lower
	// latency, and the latest interaction of in-flight sessions is lost if
	// the primary dies (see package publisher).
	Async Replication = "async"
	// Off does not replicate: for measuring what replication costs. A
	// failover loses every session.
	Off Replication = "off"
)

// Defaults for Config.
const (
	DefaultListen         = "127.0.0.1:8081"
	DefaultMaxSessions    = 100_000
	DefaultIdle           = 30 * time.Minute
	DefaultFinishedLinger = 10 * time.Minute
	DefaultMaxBody        = 64 << 10
	DefaultCookie         = "understudy_session"
	DefaultNewPerMinute   = 120
	DefaultRetention      = 24 * time.Hour
	// DefaultMaxInFlight bounds the interactions a primary works on at
	// once: a few times what keeps NATS busy (throughput times the time of
	// one publish is a handful on two cores), so that admission costs
	// nothing below saturation.
	DefaultMaxInFlight = 64
	// DefaultAdmissionWait is how long an interaction past the bound waits
	// for a place before the node answers 503 busy.
	DefaultAdmissionWait = 500 * time.Millisecond
)

// Config configures a serving node. The zero value (with a Node name) runs
// a backup against the local deployment's NATS on 127.0.0.1:4222.
type Config struct {
	// Node is this node's name: unique in the group, a subject token.
	Node string
	// App is the application a new session runs. Default: the first
	// registered, by name.
	App string
	// Role is how the node starts. Default RoleBackup.
	Role Role
	// Listen is the HTTP listen address. Default DefaultListen.
	Listen string
	// Address is the URL gateways reach this node at. Default
	// "http://" (or "https://") and the address the node listens on.
	Address string
	// NATS is how to connect to NATS. NoReconnectBuffer is always set:
	// a node must never have a failed publish delivered later.
	NATS broker.Config
	// Subjects names the stream, subjects and bucket. Default prefix
	// "understudy".
	Subjects broker.Subjects
	// Stream and Bucket provision the session stream and the groups bucket
	// if they do not exist (their Subjects are set from Subjects).
	Stream broker.StreamConfig
	Bucket broker.BucketConfig
	// Group configures the lease (Node, Address and Subjects are set from
	// the fields above).
	Group group.Config
	// Replication is the replication mode. Default Sync.
	Replication Replication
	// Cold makes a backup a cold standby: it holds no copies and reads
	// sessions from the stream when it takes over.
	Cold bool
	// MaxSessions caps live sessions; beyond it new sessions get 503 and
	// existing ones are unaffected. Default DefaultMaxSessions.
	MaxSessions int
	// NewPerMinute limits new sessions per client address per minute.
	// Default DefaultNewPerMinute; negative: no limit.
	NewPerMinute int
	// Idle ends a session nobody touched for this long. Default DefaultIdle.
	Idle time.Duration
	// FinishedLinger keeps a finished session (its summary page) this long
	// before it is ended. Default DefaultFinishedLinger.
	FinishedLinger time.Duration
	// Retention is how long an ended session's history stays in the
	// stream after its tombstone (for replay and support); then the
	// primary purges it, tombstone included. Default DefaultRetention;
	// negative: never (the stream's max age still applies).
	Retention time.Duration
	// MaxBody bounds a request body. Default DefaultMaxBody.
	MaxBody int64
	// MaxInFlight bounds the requests to the application (pages and
	// interactions) a node works on at once; past it a request waits up
	// to AdmissionWait for a place, in a queue of 4×MaxInFlight, then gets
	// 503 busy with Retry-After, which the gateway retries within its
	// budget. Default DefaultMaxInFlight; -1: no bound.
	MaxInFlight int
	// AdmissionWait: see MaxInFlight. Default DefaultAdmissionWait.
	AdmissionWait time.Duration
	// CookieName names the session cookie. Default DefaultCookie.
	CookieName string
	// Secret signs per-session CSRF tokens; every node of a group must
	// share it. Empty: CSRF tokens are derived from the session id alone
	// (still unguessable by another site, but forgeable by anyone who
	// learned the id).
	Secret []byte
	// Sealer, if set, seals every snapshot this node publishes (see
	// snapshot.Sealer: snapshot.LoadKeyring reads a key file) and opens
	// those it reads; every node of a group needs the same keys. A
	// snapshot that does not open quarantines its session.
	Sealer snapshot.Sealer
	// TLSCert and TLSKey serve HTTPS; the cookie is then Secure.
	TLSCert, TLSKey string
	// Templates overrides step pages: an interactive step with
	// Template("name") is rendered by the template of that name, executed
	// with a *model.Page.
	Templates *template.Template
	// Logger receives structured logs; field values a user typed never
	// appear in them. Default slog.Default().
	Logger *slog.Logger
	// Fault, for fault-injection tests only, is called at named points:
	// "before-publish" and "after-publish" of an interaction (the latter
	// after the ack, before the answer), "drained" when a takeover's drain
	// is done, before its claim, and "promote" after a claim, before
	// serving. A test makes it kill the process there. Nil in production.
	Fault func(point string)
	// Bugs reintroduce known defects (AnswerBeforeAck, ForgetAfterRefusal
	// here; the others in the group, the subscriber and the publisher,
	// which get them too), for the tests that show the checkers find
	// them. Zero in production.
	Bugs bugs.Set
}

// Validate checks the configuration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := broker.ValidToken(c.Node); err != nil {
		return fmt.Errorf("node name: %w", err)
	}
	switch c.Role {
	case RolePrimary, RoleBackup:
	default:
		return fmt.Errorf("role %q: want primary or backup", c.Role)
	}
	switch c.Replication {
	case Sync, Async, Off:
	default:
		return fmt.Errorf("replication %q: want sync, async or off", c.Replication)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("TLS needs both a certificate and a key")
	}
	if c.MaxSessions < 1 || c.MaxBody < 1024 {
		return fmt.Errorf("max sessions %d, max body %d: too small", c.MaxSessions, c.MaxBody)
	}
	if c.MaxInFlight < -1 || c.AdmissionWait < 0 {
		return fmt.Errorf("max in flight %d (want -1 for no bound, or more than 0), admission wait %v: invalid", c.MaxInFlight, c.AdmissionWait)
	}
	return c.Group.Validate()
}

func (c Config) withDefaults() Config {
	if c.Role == "" {
		c.Role = RoleBackup
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Replication == "" {
		c.Replication = Sync
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.NewPerMinute == 0 {
		c.NewPerMinute = DefaultNewPerMinute
	}
	if c.Idle == 0 {
		c.Idle = DefaultIdle
	}
	if c.FinishedLinger == 0 {
		c.FinishedLinger = DefaultFinishedLinger
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AdmissionWait == 0 {
		c.AdmissionWait = DefaultAdmissionWait
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookie
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NATS.Name == "" {
		c.NATS.Name = c.Node
	}
	if c.NATS.Logger == nil {
		c.NATS.Logger = c.Logger
	}
	c.NATS.NoReconnectBuffer = true
	c.Stream.Subjects, c.Bucket.Subjects = c.Subjects, c.Subjects
	if c.Stream.Logger == nil {
		c.Stream.Logger = c.Logger
	}
	if c.Bucket.Logger == nil {
		c.Bucket.Logger = c.Logger
	}
	c.Group.Node, c.Group.Subjects = c.Node, c.Subjects
	if c.Group.Logger == nil {
		c.Group.Logger = c.Logger
	}
	return c
}
