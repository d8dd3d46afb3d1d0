package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server with JetStream running inside this process.
//
// In the local deployment the gateway runs it: the gateway is the process
// that outlives node failures, so the broker must live there and not in a
// primary or a backup. In production every process connects to an
// external NATS by URL instead. Tests use it through broker/brokertest.
//
// An Embedded can be started again after Close, on the same configuration
// and therefore the same store; the stored streams come back.
type Embedded struct {
	cfg EmbeddedConfig

	mu         sync.Mutex
	srv        *server.Server
	log        *serverLog
	standalone bool // configured with no routes, leafnodes or gateways
}

// NewEmbedded returns a server that Start will run with cfg. It does no
// I/O; Start validates cfg.
func NewEmbedded(cfg EmbeddedConfig) *Embedded {
	return &Embedded{cfg: cfg}
}

// Config returns the configuration with defaults applied.
func (e *Embedded) Config() EmbeddedConfig {
	return e.cfg.withDefaults()
}

// Start starts the server and returns once it accepts connections and
// JetStream is enabled, or an error naming the port and store directory if
// that does not happen before ctx ends (a clustered server's JetStream is
// usable only once the cluster elects a meta leader; Start does not wait
// for that, since the other members may not be started yet).
func (e *Embedded) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return fmt.Errorf("embedded nats %s: %w", e.srv.ClientURL(), ErrAlreadyStarted)
	}
	if err := e.cfg.Validate(); err != nil {
		return err
	}
	cfg := e.cfg.withDefaults()
	opts, err := cfg.serverOptions()
	if err != nil {
		return err
	}
	where := fmt.Sprintf("embedded nats %s:%d (store %s)", cfg.Host, cfg.Port, cfg.StoreDir)

	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	log := &serverLog{l: cfg.Logger.With("nats_server", srv.Name())}
	// Debug and trace stay off: they log every protocol line.
	srv.SetLoggerV2(log, false, false, false)

	// Start returns once the listeners are up or startup gave up (it
	// logs the reason through Fatalf); JetStream recovery happens inside
	// it and may take a while on a large store, so honour ctx meanwhile.
	started := make(chan struct{})
	go func() {
		srv.Start()
		close(started)
	}()
	fail := func(err error) error {
		srv.Shutdown()
		<-started
		srv.WaitForShutdown()
		if last := log.lastError(); last != "" {
			return fmt.Errorf("%s: %w: %w: %s", where, ErrServerNotReady, err, last)
		}
		return fmt.Errorf("%s: %w: %w", where, ErrServerNotReady, err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		if log.fatal() {
			return fail(fmt.Errorf("startup failed"))
		}
	}
	if !srv.JetStreamEnabled() {
		return fail(fmt.Errorf("jetstream not enabled"))
	}
	e.srv, e.log = srv, log
	e.standalone = opts.Cluster.Port == 0 && len(opts.Routes) == 0 && opts.Cluster.Name == "" &&
		opts.LeafNode.Port == 0 && len(opts.LeafNode.Remotes) == 0 &&
		opts.Gateway.Port == 0 && len(opts.Gateway.Gateways) == 0
	cfg.Logger.Info("embedded nats ready",
		"url", srv.ClientURL(), "store", cfg.StoreDir, "server", srv.Name(),
		"cluster", cfg.ClusterName, "sync_always", opts.SyncAlways)
	return nil
}

// ClientURL returns the URL clients connect to (with the actual port when
// Port is RandomPort), or "" when the server is not running.
func (e *Embedded) ClientURL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Standalone returns the running server's id and reports whether it is a
// standalone server: configured with no cluster routes, no leafnode
// connections (accepted or made) and no gateways, and connected to none.
// Interest seen on such a server is the whole truth; on any other it
// may lag (DESIGN.md, "Fast path for a crash").
func (e *Embedded) Standalone() (serverID string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return "", false
	}
	return e.srv.ID(), e.standalone && e.srv.NumRoutes() == 0 && e.srv.NumLeafNodes() == 0 && e.srv.NumOutboundGateways() == 0
}

// Server returns the running nats-server, or nil; for tests and
// diagnostics (for instance JetStreamIsLeader).
func (e *Embedded) Server() *server.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// Close shuts the server down and waits until it has, or until ctx ends.
// Leaders of replicated streams step down first, so a cluster elects new
// ones quickly. Close on a server that is not running does nothing.
func (e *Embedded) Close(ctx context.Context) error {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shut down embedded nats %s: %w", srv.Name(), ctx.Err())
	}
}

func (c EmbeddedConfig) serverOptions() (*server.Options, error) {
	opts := &server.Options{}
	if c.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(c.ConfigFile); err != nil {
			return nil, fmt.Errorf("%w: embedded nats: config file: %w", ErrInvalidConfig, err)
		}
	}
	if c.ServerName != "" {
		opts.ServerName = c.ServerName
	}
	opts.Host, opts.Port = c.Host, c.Port
	// The embedding process owns signals (oklog/run in cmd/).
	opts.NoSigs = true
	opts.JetStream = true
	opts.StoreDir = c.StoreDir
	opts.JetStreamMaxMemory, opts.JetStreamMaxStore = c.JetStreamMaxMemory, c.JetStreamMaxStore
	opts.SyncAlways, opts.SyncInterval = c.SyncInterval == 0, c.SyncInterval
	opts.DisableJetStreamBanner = true
	if c.User != "" || c.Token != "" {
		opts.Username, opts.Password, opts.Authorization = c.User, c.Password, c.Token
	}
	if c.MonitorPort != 0 {
		opts.HTTPHost = c.Host
		opts.HTTPPort = c.MonitorPort
	}
	if c.TLS.enabled() {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: c.TLS.CertFile,
			KeyFile:  c.TLS.KeyFile,
			CaFile:   c.TLS.CAFile,
			Verify:   c.TLS.VerifyClients,
		})
		if err != nil {
			return nil, fmt.Errorf("embedded nats tls %s: %w", c.TLS.CertFile, err)
		}
		opts.TLS = true
		opts.TLSConfig = tc
		opts.TLSVerify = c.TLS.VerifyClients
		opts.TLSTimeout = 2
	}
	if c.ClusterName != "" {
		opts.Cluster = server.ClusterOpts{
			Name: c.ClusterName,
			Host: c.ClusterHost,
			Port: c.ClusterPort,
		}
		if len(c.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		}
	}
	return opts, nil
}

// serverLog passes nats-server's log through slog. Notices (a dozen lines
// at startup, elections, route changes) go to debug level so that a node's
// log is not drowned; warnings and errors keep their level. The last error
// is kept so that a failed Start can say why.
type serverLog struct {
	l *slog.Logger

	mu      sync.Mutex
	last    string
	isFatal bool
}

var _ server.Logger = (*serverLog)(nil)

func (s *serverLog) logf(level slog.Level, format string, v []any) string {
	if !s.l.Enabled(context.Background(), level) && level < slog.LevelError {
		return ""
	}
	msg := fmt.Sprintf(format, v...)
	s.l.Log(context.Background(), level, msg)
	return msg
}

func (s *serverLog) Noticef(format string, v ...any) { s.logf(slog.LevelDebug, format, v) }
func (s *serverLog) Warnf(format string, v ...any)   { s.logf(slog.LevelWarn, format, v) }
func (s *serverLog) Debugf(format string, v ...any)  { s.logf(slog.LevelDebug-4, format, v) }
func (s *serverLog) Tracef(format string, v ...any)  {}

func (s *serverLog) Errorf(format string, v ...any) {
	s.record(s.logf(slog.LevelError, format, v), false)
}

// Fatalf does not exit, unlike nats-server's own logger: the server calls
// it when startup fails (port in use, store unusable) and returns, and
// Start reports it.
func (s *serverLog) Fatalf(format string, v ...any) {
	s.record(s.logf(slog.LevelError, format, v), true)
}

func (s *serverLog) record(msg string, fatal bool) {
	s.mu.Lock()
	s.last = msg
	s.isFatal = s.isFatal || fatal
	s.mu.Unlock()
}

func (s *serverLog) fatal() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isFatal
}

func (s *serverLog) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
