package broker

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults for EmbeddedConfig.
const (
	// DefaultHost keeps the embedded server on loopback: in the local
	// deployment only processes on this machine connect to it.
	DefaultHost = "127.0.0.1"

	// DefaultPort is NATS's usual client port.
	DefaultPort = 4222

	// RandomPort, as a port, asks for any free port (tests).
	RandomPort = -1

	// DefaultJetStreamMaxMemory bounds memory storage. understudy stores
	// everything on file; this only caps what JetStream may hold in memory.
	DefaultJetStreamMaxMemory int64 = 64 << 20

	// DefaultJetStreamMaxStore bounds file storage: roughly sessions x
	// history x snapshot size, with room to spare for a local deployment.
	DefaultJetStreamMaxStore int64 = 1 << 30
)

// EmbeddedConfig configures an in-process NATS server with JetStream on
// file storage. The zero value is not valid: StoreDir is required.
type EmbeddedConfig struct {
	// ServerName names the server in logs and in a cluster, where it must
	// be unique and stable across restarts. Default: nats-server's own id
	// (single server only).
	ServerName string

	// Host is the address clients (and the monitoring port) listen on.
	// Default DefaultHost.
	Host string

	// Port is the client port: 0 means DefaultPort, RandomPort any free
	// port (read it back with Embedded.ClientURL).
	Port int

	// StoreDir is the directory JetStream keeps its files in. Required;
	// never a temporary directory by default, since it holds every
	// session.
	StoreDir string

	// JetStreamMaxMemory and JetStreamMaxStore cap JetStream's memory and
	// file storage in bytes. Defaults DefaultJetStreamMaxMemory and
	// DefaultJetStreamMaxStore; set explicitly so the server never sizes
	// itself from whatever the machine happens to have.
	JetStreamMaxMemory int64
	JetStreamMaxStore  int64

	// SyncInterval, when 0 (the default), makes the server fsync every
	// write before it acknowledges it: a single server must not lose an
	// acknowledged snapshot when its machine crashes. A positive value
	// fsyncs in the background at that interval instead: faster, and
	// acceptable only with replicas on other machines.
	SyncInterval time.Duration

	// MonitorPort is the HTTP monitoring port (/varz, /jsz...): 0 (the
	// default) means off, RandomPort any free port, otherwise that port.
	MonitorPort int

	// User and Password, or Token, require clients to authenticate.
	User     string
	Password string
	Token    string

	// ConfigFile is a nats-server configuration file read before the
	// fields above are applied: its authorization (users with
	// permissions, nkeys), accounts and other settings hold, while the
	// listen address, JetStream, TLS and cluster settings of this
	// EmbeddedConfig replace the file's. deploy/nats/permissions.conf is
	// one: a user per role with the least permissions it needs. Not
	// together with User or Token.
	ConfigFile string

	// TLS configures TLS for clients; the zero value means plain TCP.
	TLS ServerTLS

	// ClusterName, when set, makes the server one member of a cluster
	// named so; ServerName and ClusterPort are then required.
	ClusterName string

	// ClusterHost is the address routes listen on. Default Host.
	ClusterHost string

	// ClusterPort is the route port; RandomPort for any free port (only
	// useful for a server the others route to by a port they learn).
	ClusterPort int

	// Routes are the route URLs of the other members
	// ("nats://127.0.0.1:6222"). Listing a server's own route URL is
	// harmless, so every member can be given the same list.
	Routes []string

	// Logger receives the server's warnings and errors, and its notices at
	// debug level. Default slog.Default().
	Logger *slog.Logger
}

// ServerTLS is the server side of TLS.
type ServerTLS struct {
	// CertFile and KeyFile are the server's PEM certificate and key.
	CertFile string
	KeyFile  string

	// CAFile is a PEM file of the authorities client certificates are
	// checked against when VerifyClients is set.
	CAFile string

	// VerifyClients requires clients to present a certificate.
	VerifyClients bool
}

func (t ServerTLS) enabled() bool {
	return t != ServerTLS{}
}

// Validate reports an EmbeddedConfig that Start would reject, without I/O.
func (c EmbeddedConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.StoreDir == "":
		return fmt.Errorf("%w: embedded nats: store dir required", ErrInvalidConfig)
	case net.ParseIP(c.Host) == nil && c.Host != "localhost":
		return fmt.Errorf("%w: embedded nats: host %q is not an IP address", ErrInvalidConfig, c.Host)
	case !validPort(c.Port):
		return fmt.Errorf("%w: embedded nats: port %d", ErrInvalidConfig, c.Port)
	case c.MonitorPort != 0 && !validPort(c.MonitorPort):
		return fmt.Errorf("%w: embedded nats: monitor port %d", ErrInvalidConfig, c.MonitorPort)
	case c.JetStreamMaxMemory < 0 || c.JetStreamMaxStore < 0:
		return fmt.Errorf("%w: embedded nats: jetstream limits memory %d, store %d", ErrInvalidConfig, c.JetStreamMaxMemory, c.JetStreamMaxStore)
	case c.SyncInterval < 0:
		return fmt.Errorf("%w: embedded nats: sync interval %s", ErrInvalidConfig, c.SyncInterval)
	case c.Password != "" && c.User == "":
		return fmt.Errorf("%w: embedded nats: password without user", ErrInvalidConfig)
	case c.Token != "" && c.User != "":
		return fmt.Errorf("%w: embedded nats: both token and user", ErrInvalidConfig)
	case c.ConfigFile != "" && (c.User != "" || c.Token != ""):
		return fmt.Errorf("%w: embedded nats: both a config file and a user or token: put the users in the file", ErrInvalidConfig)
	case c.TLS.enabled() && (c.TLS.CertFile == "" || c.TLS.KeyFile == ""):
		return fmt.Errorf("%w: embedded nats: tls needs cert file and key file", ErrInvalidConfig)
	case c.TLS.VerifyClients && c.TLS.CAFile == "":
		return fmt.Errorf("%w: embedded nats: tls client verification needs a ca file", ErrInvalidConfig)
	}
	if c.ClusterName == "" {
		if len(c.Routes) > 0 || c.ClusterPort != 0 {
			return fmt.Errorf("%w: embedded nats: routes or cluster port without cluster name", ErrInvalidConfig)
		}
		return nil
	}
	switch {
	case c.ServerName == "":
		return fmt.Errorf("%w: embedded nats: cluster %s needs a server name", ErrInvalidConfig, c.ClusterName)
	case c.ClusterPort == 0 || !validPort(c.ClusterPort):
		return fmt.Errorf("%w: embedded nats: cluster %s: cluster port %d", ErrInvalidConfig, c.ClusterName, c.ClusterPort)
	case net.ParseIP(c.ClusterHost) == nil && c.ClusterHost != "localhost":
		return fmt.Errorf("%w: embedded nats: cluster host %q is not an IP address", ErrInvalidConfig, c.ClusterHost)
	}
	for _, r := range c.Routes {
		if _, err := parseServerURL(r); err != nil {
			return fmt.Errorf("%w: embedded nats: route %s: %v", ErrInvalidConfig, redactURL(r), scrubURLError(err))
		}
	}
	return nil
}

func validPort(p int) bool {
	return p == RandomPort || 0 < p && p <= 65535
}

func (c EmbeddedConfig) withDefaults() EmbeddedConfig {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.JetStreamMaxMemory == 0 {
		c.JetStreamMaxMemory = DefaultJetStreamMaxMemory
	}
	if c.JetStreamMaxStore == 0 {
		c.JetStreamMaxStore = DefaultJetStreamMaxStore
	}
	if c.ClusterHost == "" {
		c.ClusterHost = c.Host
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
