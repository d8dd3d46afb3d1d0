package deploy

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BuildNATS compiles nats-server from the module understudy pins, for tests
// of the production topology: an external NATS, or a cluster of them, as
// processes of their own.
func BuildNATS(ctx context.Context, root, dir string, out io.Writer) (string, error) {
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, out, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build nats-server: %w", err)
	}
	return bin, nil
}

// NATSServer is a nats-server process with JetStream on file storage,
// fsyncing every write.
type NATSServer struct {
	*Process
	Name string
	Port int
	Conf string
}

// URL returns the client URL.
func (s *NATSServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Port) }

// NATSCluster is a set of nats-server processes routed to each other.
type NATSCluster struct {
	bin     string
	dir     string
	Servers []*NATSServer
	routes  []int
}

// StartNATS starts n nats-server processes (1 for an external single
// server, 3 for a cluster) and waits until they accept connections.
func StartNATS(ctx context.Context, bin, dir string, n int) (*NATSCluster, error) {
	c := &NATSCluster{bin: bin, dir: dir}
	for range n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		r, err := FreePort()
		if err != nil {
			return nil, err
		}
		c.Servers = append(c.Servers, &NATSServer{Name: fmt.Sprintf("nats%d", len(c.Servers)+1), Port: p})
		c.routes = append(c.routes, r)
	}
	for i := range c.Servers {
		if err := c.Start(ctx, i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Start starts (or restarts, on the same ports and store) server i.
func (c *NATSCluster) Start(ctx context.Context, i int) error {
	s := c.Servers[i]
	store := filepath.Join(c.dir, s.Name)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\n", s.Name, s.Port)
	// fsync every write: an acknowledged snapshot survives the machine.
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", store)
	if len(c.Servers) > 1 {
		var routes []string
		for j, r := range c.routes {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", r))
			}
		}
		fmt.Fprintf(&b, "cluster {\n  name: understudy\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n", c.routes[i], strings.Join(routes, ", "))
	}
	s.Conf = filepath.Join(c.dir, s.Name+".conf")
	if err := os.WriteFile(s.Conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	p, err := Start(s.Name, c.bin, []string{"-c", s.Conf}, filepath.Join(c.dir, s.Name+".log"))
	if err != nil {
		return err
	}
	s.Process = p
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited while starting; the end of %s: %s", s.Name, p.Log, logTail(p.Log))
		case <-ctx.Done():
			return fmt.Errorf("%s not listening: %w", s.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL returns the client URL listing every server.
func (c *NATSCluster) URL() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	return strings.Join(urls, ",")
}

// Close stops every server.
func (c *NATSCluster) Close() {
	for _, s := range c.Servers {
		if s.Process != nil {
			s.Stop(10 * time.Second)
		}
	}
}
