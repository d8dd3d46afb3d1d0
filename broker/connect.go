package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults for Config.
const (
	// DefaultURL is a NATS server on this machine: the local deployment,
	// where the gateway embeds it.
	DefaultURL = "nats://127.0.0.1:4222"

	// DefaultReconnectWait is the first pause between reconnect attempts.
	// It is short because a node that lost NATS cannot renew its lease
	// (300 ms by default) until it is back.
	DefaultReconnectWait = 50 * time.Millisecond

	// DefaultMaxReconnectWait caps the doubling pause between attempts, so
	// a long outage costs a few attempts a second, not a storm.
	DefaultMaxReconnectWait = 2 * time.Second

	// DefaultDialTimeout bounds one attempt to open a connection.
	DefaultDialTimeout = 2 * time.Second
)

// Config says how to connect to NATS. The zero value connects to
// DefaultURL without authentication.
type Config struct {
	// URL is one server ("nats://host:4222") or a comma-separated list of
	// the servers of a cluster. Credentials in the URL work but are never
	// logged; prefer the fields below. Default DefaultURL.
	URL string

	// Name is the client name the server shows in its connection list,
	// typically the node name.
	Name string

	// User and Password authenticate with a user name and password.
	User     string
	Password string

	// Token authenticates with a token. Not together with User.
	Token string

	// NKeySeedFile is the path of an nkey seed file to authenticate with.
	NKeySeedFile string

	// CredsFile is the path of a credentials file (a user JWT and its
	// nkey seed). Not together with NKeySeedFile.
	CredsFile string

	// TLS configures TLS; the zero value means plain TCP unless the URL
	// says tls:// or the server requires TLS.
	TLS ClientTLS

	// NoReconnectBuffer makes a publish made while disconnected fail at
	// once instead of being buffered and sent after the reconnect. Nodes
	// must set it: a publish that returned an error must never be stored
	// later, behind the back of a node that has since lost its lease
	// (DESIGN.md, "Publish outcomes").
	NoReconnectBuffer bool

	// ReconnectWait is the first pause between reconnect attempts; each
	// round over the servers doubles it up to MaxReconnectWait, with
	// jitter. Default DefaultReconnectWait.
	ReconnectWait time.Duration

	// MaxReconnectWait caps the pause. Default DefaultMaxReconnectWait.
	MaxReconnectWait time.Duration

	// DialTimeout bounds one connection attempt. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// OnDisconnect, OnReconnect and OnClosed are called, on nats.go's
	// callback goroutine, when the connection is lost, is made again, and
	// is closed for good (including when Connect gives up). They must not
	// block. The first connection is not a reconnect. The lease code uses
	// OnReconnect: after a reconnect a primary renews its lease before it
	// answers anything. (nc.Stats().Reconnects counts them too, for code
	// that gets the connection after it was made.)
	OnDisconnect func(err error)
	OnReconnect  func()
	OnClosed     func()

	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

// ClientTLS is the client side of TLS.
type ClientTLS struct {
	// CAFile is a PEM file of the certificate authorities to trust; empty
	// means the system's.
	CAFile string

	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that verify clients. Both or neither.
	CertFile string
	KeyFile  string

	// ServerName overrides the name the server's certificate is checked
	// against (the URL's host by default).
	ServerName string

	// InsecureSkipVerify accepts any server certificate. Only for tests;
	// never set by default.
	InsecureSkipVerify bool
}

func (t ClientTLS) enabled() bool {
	return t != ClientTLS{}
}

// Validate reports a Config that Connect would reject, without I/O.
func (c Config) Validate() error {
	c = c.withDefaults()
	for u := range strings.SplitSeq(c.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return fmt.Errorf("%w: url %s: empty server in list", ErrInvalidConfig, redactURLs(c.URL))
		}
		if _, err := parseServerURL(u); err != nil {
			return fmt.Errorf("%w: url %s: %v", ErrInvalidConfig, redactURL(u), scrubURLError(err))
		}
	}
	switch {
	case c.Password != "" && c.User == "":
		return fmt.Errorf("%w: password without user", ErrInvalidConfig)
	case c.Token != "" && c.User != "":
		return fmt.Errorf("%w: both token and user", ErrInvalidConfig)
	case c.NKeySeedFile != "" && c.CredsFile != "":
		return fmt.Errorf("%w: both nkey seed file and creds file", ErrInvalidConfig)
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return fmt.Errorf("%w: tls cert file and key file go together", ErrInvalidConfig)
	case c.ReconnectWait < 0 || c.MaxReconnectWait < c.ReconnectWait:
		return fmt.Errorf("%w: reconnect wait %s, max %s", ErrInvalidConfig, c.ReconnectWait, c.MaxReconnectWait)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: dial timeout %s", ErrInvalidConfig, c.DialTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.MaxReconnectWait == 0 {
		c.MaxReconnectWait = max(DefaultMaxReconnectWait, c.ReconnectWait)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// RedactedURL returns the server URL (or list) without any credentials
// it holds, for logs and status pages.
func (c Config) RedactedURL() string {
	return redactURLs(c.withDefaults().URL)
}

// Options returns the nats.go options Config stands for, for a caller that
// calls nats.Connect itself. It reads the TLS and nkey files. Connect adds
// handlers of its own on top of these to watch the first connection.
func (c Config) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	log := c.Logger.With("nats", redactURLs(c.URL))

	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.DialTimeout),
		// Never give up: a node outlives NATS restarts, and whether it is
		// ready is for its caller to say, not for the client library.
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(backoff(c.ReconnectWait, c.MaxReconnectWait)),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				// Our own Close.
				log.Info("nats disconnected")
			} else {
				log.Warn("nats disconnected", "err", err)
			}
			if c.OnDisconnect != nil {
				c.OnDisconnect(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
			if c.OnReconnect != nil {
				c.OnReconnect()
			}
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			log.Info("nats connection closed", "err", nc.LastError())
			if c.OnClosed != nil {
				c.OnClosed()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("nats async error", "err", err)
		}),
	}
	if c.NoReconnectBuffer {
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if c.CredsFile != "" {
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TLS.enabled() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

func (t ClientTLS) config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // only when explicitly configured
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca file %s: %w: no PEM certificates", t.CAFile, ErrInvalidConfig)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client cert %s: %w", t.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// backoff doubles the pause after each full round over the servers, from
// first up to limit, and draws it from [d/2, d) so that clients cut off
// together do not come back together.
func backoff(first, limit time.Duration) func(attempts int) time.Duration {
	return func(attempts int) time.Duration {
		d := first
		for i := 1; i < attempts && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
		if d <= 1 {
			return d
		}
		return d/2 + rand.N(d/2)
	}
}

// Connect connects to NATS as cfg says and waits until the first
// connection is made, the client gives up (only on the same authorization
// error twice: refused connections and TLS failures are retried), or ctx
// ends. The caller's ctx is what bounds the wait, and one without a
// deadline waits for as long as NATS is down. On error the connection is
// closed and the error wraps ErrNoConnection, names the URL (credentials
// removed) and says why the last attempt failed.
//
// Once connected, the client reconnects forever with jittered backoff;
// see Config for the callbacks and NoReconnectBuffer.
func Connect(ctx context.Context, cfg Config) (*nats.Conn, error) {
	opts, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	urls := redactURLs(cfg.URL)

	// Attempts made before the first connection report only through this
	// callback; keep the last reason so the error can say it.
	var (
		mu      sync.Mutex
		lastErr error
	)
	opts = append(opts, nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
		mu.Lock()
		lastErr = err
		mu.Unlock()
	}))

	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", urls, scrubURLError(err))
	}
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)

	logged := false
	for {
		// Check after registering the listener: a change made before it
		// was registered is seen here, one made after is sent on ch.
		switch nc.Status() {
		case nats.CONNECTED:
			cfg.Logger.Info("nats connected", "server", nc.ConnectedUrlRedacted(), "name", cfg.Name)
			return nc, nil
		case nats.CLOSED:
			cause := nc.LastError()
			if cause == nil {
				cause = errors.New("connection closed")
			}
			return nil, fmt.Errorf("connect %s: %w: %w", urls, ErrNoConnection, cause)
		}
		if !logged {
			cfg.Logger.Warn("nats not connected yet, retrying", "nats", urls)
			logged = true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			nc.Close()
			mu.Lock()
			cause := lastErr
			mu.Unlock()
			if cause == nil {
				return nil, fmt.Errorf("connect %s: %w: %w", urls, ErrNoConnection, ctx.Err())
			}
			return nil, fmt.Errorf("connect %s: %w: %w (last attempt: %w)", urls, ErrNoConnection, ctx.Err(), cause)
		}
	}
}

// parseServerURL accepts what nats.go accepts: a URL with a scheme, or a
// bare host:port.
func parseServerURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

// redactURL removes the user information (user, password or token) from a
// server URL, for logs and errors.
func redactURL(s string) string {
	s = strings.TrimSpace(s)
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	scheme := ""
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		scheme = s[:i+3]
	}
	return scheme + "redacted@" + s[at+1:]
}

// scrubURLError drops the URL from a *url.Error, which would otherwise
// carry a password or token into a log line.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactURLs is redactURL for a comma-separated list.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactURL(p)
	}
	return strings.Join(parts, ",")
}
