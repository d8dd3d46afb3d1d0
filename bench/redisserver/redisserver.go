// Package redisserver runs a throwaway redis-server for the benchmarks: on
// a free loopback port, its data in a directory of the caller's, with the
// durability asked for, stopped (and nothing left running) by Close.
//
// redis-server comes from the machine (Debian's redis-server package);
// when it is missing, Start returns an error wrapping ErrNotInstalled
// whose text says how to install it.
package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotInstalled says redis-server is not on the PATH.
var ErrNotInstalled = errors.New("redis-server is not installed")

// InstallHint says how to install redis-server.
const InstallHint = "install it with: apt-get install -y redis-server (Debian/Ubuntu; other systems: the redis or redis-server package)"

// Fsync is Redis's append-only-file durability.
type Fsync string

// Durabilities, as Redis's appendfsync names them.
const (
	// Always fsyncs the append-only file before answering a write.
	Always Fsync = "always"
	// EverySec fsyncs it once a second in the background.
	EverySec Fsync = "everysec"
)

// Server is a running redis-server.
type Server struct {
	Addr    string // host:port
	Dir     string
	Fsync   Fsync
	Version string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Available reports whether redis-server is on the PATH, with an error
// wrapping ErrNotInstalled when it is not.
func Available() error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("%w: %s", ErrNotInstalled, InstallHint)
	}
	return nil
}

// Start starts redis-server with its append-only file in dir (created if
// needed) fsynced as fsync asks, snapshots (RDB) off, on a free port of
// 127.0.0.1, and returns once it answers PING.
func Start(ctx context.Context, dir string, fsync Fsync) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dir, _ = filepath.Abs(dir)
	var lastErr error
	// A port free now may be taken before redis binds it: try a few.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := start(ctx, dir, fsync, port)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, dir string, fsync Fsync, port int) (*Server, error) {
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--protected-mode", "no",
		"--dir", dir, "--daemonize", "no", "--save", "",
		"--appendonly", "yes", "--appendfsync", string(fsync),
		"--logfile", filepath.Join(dir, "redis.log"),
		// The machine's memory, not a cap, bounds the benchmarks.
		"--maxmemory", "0",
	}
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, Fsync: fsync, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := s.ping()
		if err == nil {
			s.Version = v
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server on port %d exited while starting (%v); log: %s", port, s.err, tail(filepath.Join(dir, "redis.log")))
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("redis-server on port %d not answering: %v", port, err)
		}
	}
}

// ping sends PING and INFO server over the wire protocol, and returns the
// server's version.
func (s *Server) ping() (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return "", fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", nil // answers PING: up, version unknown
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
}

// Close stops the server (SIGTERM, then SIGKILL after a few seconds) and
// waits for it to exit.
func (s *Server) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("redis-server %s did not stop within 10s: killed", s.Addr)
	}
}

// PID returns the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
