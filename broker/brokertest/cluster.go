package brokertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
)

// ClusterName is the name of every cluster StartCluster forms.
const ClusterName = "understudy-test"

// LeaderTimeout bounds waits for a leader election. Raft elections in
// nats-server take seconds (randomised 4 to 9 s timeouts), more on a busy
// machine.
const LeaderTimeout = 45 * time.Second

// globalAccount is the account clients land in without accounts configured.
const globalAccount = "$G"

// Cluster is a NATS cluster of embedded servers with JetStream, each with
// its own store, routed to each other on loopback.
type Cluster struct {
	tb      testing.TB
	servers []*Server
}

// StartCluster starts n servers (n >= 1; 3 for replicated streams) that
// route to each other, and waits until JetStream has a meta leader that
// sees all n servers. Every server is stopped when the test ends.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("brokertest: cluster of %d servers", n)
	}
	// Route ports are chosen before any server starts: every server's
	// route list must name all of them.
	ports := freePorts(tb, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	c := &Cluster{tb: tb}
	for i := range n {
		cfg := broker.EmbeddedConfig{
			ServerName:  serverName(i),
			Host:        "127.0.0.1",
			Port:        broker.RandomPort,
			StoreDir:    tb.TempDir(),
			ClusterName: ClusterName,
			ClusterPort: ports[i],
			Routes:      routes,
			Logger:      Logger(tb).With("server", serverName(i)),
		}
		for _, o := range opts {
			o(&cfg)
		}
		s := &Server{tb: tb, cfg: cfg}
		tb.Cleanup(s.Stop)
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		s.Start()
	}
	c.WaitForMetaLeader(tb)
	return c
}

// Server returns the i-th server (0-based); stop and restart it with its
// own methods.
func (c *Cluster) Server(i int) *Server {
	return c.servers[i]
}

// Servers returns all servers.
func (c *Cluster) Servers() []*Server {
	return c.servers
}

// URL returns the comma-separated client URLs of all servers.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// ClientConfig returns a broker.Config listing every server.
func (c *Cluster) ClientConfig(tb testing.TB, opts ...ClientOption) broker.Config {
	return clientConfig(tb, c.URL(), c.servers[0].Config(), opts)
}

// Connect connects a client to the cluster and closes it when the test
// ends.
func (c *Cluster) Connect(tb testing.TB, opts ...ClientOption) *nats.Conn {
	tb.Helper()
	return connect(tb, c.ClientConfig(tb, opts...))
}

// JetStream connects a client and returns its JetStream context.
func (c *Cluster) JetStream(tb testing.TB, opts ...ClientOption) jetstream.JetStream {
	tb.Helper()
	return newJetStream(tb, c.Connect(tb, opts...))
}

// MetaLeader returns the running server that is the JetStream meta leader,
// or nil.
func (c *Cluster) MetaLeader() *Server {
	for _, s := range c.servers {
		if e := s.Embedded(); e != nil && e.Server().JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// WaitForMetaLeader waits until a meta leader sees every running server
// and every running server is current with it, and returns the leader.
func (c *Cluster) WaitForMetaLeader(tb testing.TB) *Server {
	tb.Helper()
	var leader *Server
	WaitFor(tb, LeaderTimeout, "jetstream meta leader", func() bool {
		leader = c.MetaLeader()
		if leader == nil {
			return false
		}
		running := 0
		for _, s := range c.servers {
			e := s.Embedded()
			if e == nil {
				continue
			}
			running++
			if !e.Server().JetStreamIsCurrent() {
				return false
			}
		}
		return len(leader.Embedded().Server().JetStreamClusterPeers()) >= running
	})
	return leader
}

// StreamLeader returns the running server leading stream (in the global
// account), or nil.
func (c *Cluster) StreamLeader(stream string) *Server {
	for _, s := range c.servers {
		if e := s.Embedded(); e != nil && e.Server().JetStreamIsStreamLeader(globalAccount, stream) {
			return s
		}
	}
	return nil
}

// WaitForStreamLeader waits until stream has a leader and every running
// server holding a replica is current, and returns the leader.
func (c *Cluster) WaitForStreamLeader(tb testing.TB, stream string) *Server {
	tb.Helper()
	var leader *Server
	WaitFor(tb, LeaderTimeout, "leader of stream "+stream, func() bool {
		leader = c.StreamLeader(stream)
		if leader == nil {
			return false
		}
		for _, s := range c.servers {
			if e := s.Embedded(); e != nil && !e.Server().JetStreamIsStreamCurrent(globalAccount, stream) {
				return false
			}
		}
		return true
	})
	return leader
}
