// Package brokertest starts real NATS servers with JetStream inside a test:
// one server (Start) or a cluster (StartCluster), on random loopback
// ports, with file storage in t.TempDir(), shut down in t.Cleanup. Servers
// can be stopped and restarted on the same port and store, for tests of a
// broker that stops mid-session or restarts. Never a mock: the servers are
// nats-server itself, through broker.Embedded.
//
// Waits poll for a condition with a deadline; none sleeps for a fixed
// time.
package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
)

// Timeouts for starting servers and clients. Generous: the machine running
// the tests may be busy.
const (
	startTimeout   = 30 * time.Second
	connectTimeout = 10 * time.Second
	stopTimeout    = 30 * time.Second
)

// Option changes a server's configuration before it first starts.
type Option func(*broker.EmbeddedConfig)

// WithUser makes the server require a user and password.
func WithUser(user, password string) Option {
	return func(c *broker.EmbeddedConfig) { c.User, c.Password = user, password }
}

// WithToken makes the server require a token.
func WithToken(token string) Option {
	return func(c *broker.EmbeddedConfig) { c.Token = token }
}

// WithConfigFile makes the server read a nats-server configuration file
// first (users and permissions: see broker.EmbeddedConfig.ConfigFile).
// Clients then say who they are with AsUser.
func WithConfigFile(path string) Option {
	return func(c *broker.EmbeddedConfig) { c.ConfigFile = path }
}

// WithSyncInterval makes the server fsync in the background at interval
// instead of on every write.
func WithSyncInterval(interval time.Duration) Option {
	return func(c *broker.EmbeddedConfig) { c.SyncInterval = interval }
}

// ClientOption changes a client's configuration in Connect.
type ClientOption func(*broker.Config)

// AsUser makes the client authenticate as user with password.
func AsUser(user, password string) ClientOption {
	return func(c *broker.Config) { c.User, c.Password, c.Token = user, password, "" }
}

// NoReconnectBuffer makes the client fail a publish made while
// disconnected, as nodes do.
func NoReconnectBuffer() ClientOption {
	return func(c *broker.Config) { c.NoReconnectBuffer = true }
}

// Server is one embedded server run for a test.
type Server struct {
	tb  testing.TB
	emb *broker.Embedded

	mu      sync.Mutex
	cfg     broker.EmbeddedConfig
	url     string
	running bool
}

// Start starts a single server on a random loopback port with its store
// in t.TempDir(), and stops it when the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	log := Logger(tb)
	cfg := broker.EmbeddedConfig{
		ServerName: "test",
		Host:       "127.0.0.1",
		Port:       broker.RandomPort,
		StoreDir:   tb.TempDir(),
		Logger:     log,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{tb: tb, cfg: cfg}
	tb.Cleanup(s.Stop)
	s.Start()
	return s
}

// Start starts the server again after Stop, on the same port and store.
// Start on a running server does nothing.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	emb := broker.NewEmbedded(s.cfg)
	if err := emb.Start(ctx); err != nil {
		s.tb.Fatalf("brokertest: start %s: %v", s.cfg.ServerName, err)
	}
	if s.cfg.Port == broker.RandomPort {
		// Keep the port so a restart comes back where clients look.
		s.cfg.Port = emb.Server().Addr().(*net.TCPAddr).Port
	}
	if s.cfg.MonitorPort == broker.RandomPort {
		s.cfg.MonitorPort = emb.Server().MonitorAddr().Port
	}
	s.emb, s.url, s.running = emb, emb.ClientURL(), true
}

// Stop shuts the server down and waits until it has. Clients see a
// disconnect and keep trying. Stop on a stopped server does nothing.
func (s *Server) Stop() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := s.emb.Close(ctx); err != nil {
		s.tb.Errorf("brokertest: stop %s: %v", s.cfg.ServerName, err)
	}
	s.running = false
}

// Restart stops the server and starts it again on the same port and
// store: what survives is what JetStream had on disk.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.Start()
}

// Running reports whether the server is started.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// URL returns the client URL. It stays valid while the server is stopped,
// since a restart uses the same port.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Config returns the server's configuration, with the port it got.
func (s *Server) Config() broker.EmbeddedConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Embedded returns the running broker.Embedded (nil before the first
// start), for tests that need the nats-server itself.
func (s *Server) Embedded() *broker.Embedded {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	return s.emb
}

// Standalone reports the running server's id and whether it is a
// standalone server (broker.Embedded.Standalone); false while stopped.
func (s *Server) Standalone() (string, bool) {
	if emb := s.Embedded(); emb != nil {
		return emb.Standalone()
	}
	return "", false
}

// AnswerStandalone answers, for the test, the question nodes ask before
// they use the crash fast path (broker.AskStandalone), as the gateway
// does for its embedded server, across restarts.
func (s *Server) AnswerStandalone(tb testing.TB, subjects broker.Subjects) {
	tb.Helper()
	nc := s.Connect(tb)
	if _, err := broker.AnswerStandalone(nc, subjects, s); err != nil {
		tb.Fatalf("brokertest: answer standalone: %v", err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatalf("brokertest: answer standalone: %v", err)
	}
}

// ClientConfig returns a broker.Config for this server, with its
// credentials and quick reconnects, for tests that call broker.Connect
// themselves.
func (s *Server) ClientConfig(tb testing.TB, opts ...ClientOption) broker.Config {
	return clientConfig(tb, s.URL(), s.Config(), opts)
}

// Connect connects a client (see ClientConfig), waits until it is
// connected, and closes it when the test ends.
func (s *Server) Connect(tb testing.TB, opts ...ClientOption) *nats.Conn {
	tb.Helper()
	return connect(tb, s.ClientConfig(tb, opts...))
}

// JetStream connects a client and returns its JetStream context.
func (s *Server) JetStream(tb testing.TB, opts ...ClientOption) jetstream.JetStream {
	tb.Helper()
	return newJetStream(tb, s.Connect(tb, opts...))
}

func clientConfig(tb testing.TB, url string, srv broker.EmbeddedConfig, opts []ClientOption) broker.Config {
	cfg := broker.Config{
		URL:              url,
		Name:             tb.Name(),
		User:             srv.User,
		Password:         srv.Password,
		Token:            srv.Token,
		ReconnectWait:    10 * time.Millisecond,
		MaxReconnectWait: 200 * time.Millisecond,
		Logger:           Logger(tb),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func connect(tb testing.TB, cfg broker.Config) *nats.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	nc, err := broker.Connect(ctx, cfg)
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

func newJetStream(tb testing.TB, nc *nats.Conn) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("brokertest: jetstream: %v", err)
	}
	return js
}

// Logger returns a logger that writes to the test's log (shown when the
// test fails or with -v) and drops what arrives after the test ended,
// since servers and clients may still log while they wind down.
func Logger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tbWriter struct {
	mu      sync.Mutex
	tb      testing.TB
	stopped bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test naming what if it does not within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("brokertest: %s: not within %s", what, timeout)
		}
		<-tick.C
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All are held open until the last is chosen, so they differ; a port can
// still be taken by someone else before the server binds it, which is
// rare enough for tests.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("brokertest: free port: %v", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func serverName(i int) string { return fmt.Sprintf("s%d", i) }
