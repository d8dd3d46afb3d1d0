// Package deploy runs understudy as separate OS processes on one machine:
// it builds the binaries, starts a gateway with embedded NATS and any
// number of primary and backup nodes, waits until they are ready, and
// stops, kills, pauses and restarts them. The local deployment (cmd/local)
// and the end-to-end tests (test/e2e) are built on it.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binaries are the paths of the built commands.
type Binaries struct {
	Gateway, Primary, Backup string
}

// ModuleRoot finds the directory of understudy's go.mod, from dir upwards.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && len(data) > 15 && string(data[:16]) == "module understud" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("understudy's go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles the gateway, primary and backup commands into dir.
func Build(ctx context.Context, root, dir string, out io.Writer) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	b := Binaries{Gateway: filepath.Join(dir, "gateway"), Primary: filepath.Join(dir, "primary"), Backup: filepath.Join(dir, "backup")}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/gateway", "./cmd/primary", "./cmd/backup")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, out, out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w", err)
	}
	return b, nil
}

// Process is one running command.
type Process struct {
	Name string
	Bin  string
	Args []string
	Log  string // its stdout and stderr

	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	logf   *os.File
	killed bool
}

// Start runs bin with args, its output appended to logPath.
func Start(name, bin string, args []string, logPath string, env ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: a terminal's Ctrl-C goes to the supervisor,
	// which stops the processes in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Bin: bin, Args: args, Log: logPath, cmd: cmd, done: make(chan struct{}), logf: logf}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Process) Kill() {
	p.killed = true
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Pause sends SIGSTOP and waits until every thread of the process has
// stopped. kill(2) returns before that: the kernel wakes one thread to
// take the signal, and until it runs (a while, on a loaded machine) the
// other threads go on serving. A test that sends requests to a paused
// process must not have them handled by one that is still running.
func (p *Process) Pause() {
	p.cmd.Process.Signal(syscall.SIGSTOP)
	deadline := time.Now().Add(5 * time.Second)
	for !p.stopped() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
}

// Stopped reports whether every thread of the process is stopped by a
// signal (as one that stopped itself at a fault point is).
func (p *Process) Stopped() bool {
	if exited, _ := p.Exited(); exited {
		return false
	}
	return p.stopped()
}

// Resume sends SIGCONT.
func (p *Process) Resume() { p.cmd.Process.Signal(syscall.SIGCONT) }

// stopped reports whether every thread of the process is stopped (state T
// in /proc), or the process is gone. Where there is no /proc it reports
// true: Pause then returns once the signal is sent.
func (p *Process) stopped() bool {
	if exited, _ := p.Exited(); exited {
		return true
	}
	dir := fmt.Sprintf("/proc/%d/task", p.PID())
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return os.IsNotExist(err) && !procMounted()
	}
	for _, t := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// Stop sends SIGTERM (a graceful stop) and waits up to timeout before it
// kills.
func (p *Process) Stop(timeout time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGCONT) // a paused process cannot stop
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %v: killed", p.Name, timeout)
	}
}

// FreePort returns a TCP port free on the loopback interface now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Config describes a local deployment.
type Config struct {
	Bin     Binaries
	Dir     string // data and logs
	Gateway int    // HTTP port of the gateway (0: a free one)
	NATS    int    // port of the embedded NATS server (0: a free one)
	// GatewayArgs and NodeArgs are added to every gateway's and node's
	// command line.
	GatewayArgs, NodeArgs []string
	// ExternalNATS, if set, makes gateways and nodes use that NATS instead
	// of the gateway's embedded server.
	ExternalNATS string
}

// Local is a running local deployment.
type Local struct {
	cfg      Config
	mu       sync.Mutex
	Gateways []*Process
	Nodes    map[string]*Process
	ports    map[string]int
	NATSURL  string
	secret   string
}

// StartLocal starts a gateway (with embedded NATS, unless ExternalNATS is
// set) and waits until it answers. Add nodes with StartNode.
func StartLocal(ctx context.Context, cfg Config) (*Local, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	l := &Local{cfg: cfg, Nodes: map[string]*Process{}, ports: map[string]int{}}
	// The secret that signs CSRF tokens: every node must share it.
	l.secret = filepath.Join(cfg.Dir, "secret")
	if _, err := os.Stat(l.secret); err != nil {
		var b [32]byte
		rand.Read(b[:])
		if err := os.WriteFile(l.secret, []byte(hex.EncodeToString(b[:])), 0o600); err != nil {
			return nil, err
		}
	}
	var err error
	if cfg.NATS == 0 {
		if cfg.NATS, err = FreePort(); err != nil {
			return nil, err
		}
		l.cfg.NATS = cfg.NATS
	}
	l.NATSURL = cfg.ExternalNATS
	if l.NATSURL == "" {
		l.NATSURL = "nats://127.0.0.1:" + strconv.Itoa(cfg.NATS)
	}
	if _, err := l.StartGateway(ctx, cfg.Gateway); err != nil {
		return nil, err
	}
	return l, nil
}

// StartGateway starts one more gateway on port (0: a free one) and waits
// until it answers. The first gateway embeds the NATS server unless the
// deployment uses an external one.
func (l *Local) StartGateway(ctx context.Context, port int) (*Process, error) {
	var err error
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	i := len(l.Gateways)
	l.Gateways = append(l.Gateways, nil)
	l.mu.Unlock()
	return l.startGateway(ctx, i, port)
}

// RestartGateway kills the i-th gateway with SIGKILL and starts it again on
// its port, waiting until it answers. A gateway holds no state a session
// needs; with an embedded NATS server (the first gateway without
// ExternalNATS) the server restarts with it.
func (l *Local) RestartGateway(ctx context.Context, i int) (*Process, error) {
	l.mu.Lock()
	p, port := l.Gateways[i], l.ports[gatewayName(i)]
	l.mu.Unlock()
	p.Kill()
	return l.startGateway(ctx, i, port)
}

func gatewayName(i int) string {
	if i == 0 {
		return "gateway"
	}
	return fmt.Sprintf("gateway%d", i+1)
}

func (l *Local) startGateway(ctx context.Context, i, port int) (*Process, error) {
	name := gatewayName(i)
	args := []string{"-listen", "127.0.0.1:" + strconv.Itoa(port)}
	if i == 0 && l.cfg.ExternalNATS == "" {
		args = append(args, "-nats-listen", "127.0.0.1:"+strconv.Itoa(l.cfg.NATS), "-data", filepath.Join(l.cfg.Dir, "nats"))
	} else {
		args = append(args, "-nats", l.NATSURL)
	}
	args = append(args, l.cfg.GatewayArgs...)
	p, err := Start(name, l.cfg.Bin.Gateway, args, filepath.Join(l.cfg.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.Gateways[i] = p
	l.ports[name] = port
	l.mu.Unlock()
	if err := waitHTTP(ctx, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), func(*http.Response) bool { return true }); err != nil {
		return nil, err
	}
	return p, nil
}

// GatewayCount returns how many gateways the deployment has.
func (l *Local) GatewayCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.Gateways)
}

// GatewayURL returns the base URL of the i-th gateway.
func (l *Local) GatewayURL(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("http://127.0.0.1:%d", l.ports[gatewayName(i)])
}

// NodeURL returns the base URL of a node.
func (l *Local) NodeURL(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("http://127.0.0.1:%d", l.ports[name])
}

// StartNode starts a node (role "primary" or "backup") named name, on the
// port it had before if it ran before, and waits until it is ready: for a
// primary, until it serves or reports it runs as a backup.
func (l *Local) StartNode(ctx context.Context, name, role string, extra ...string) (*Process, error) {
	return l.StartNodeEnv(ctx, name, role, nil, extra...)
}

// StartNodeEnv is StartNode with env added to the node's environment (a
// fault-injection test arms a fault point so).
func (l *Local) StartNodeEnv(ctx context.Context, name, role string, env []string, extra ...string) (*Process, error) {
	l.mu.Lock()
	port, ok := l.ports[name]
	l.mu.Unlock()
	if !ok {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	bin := l.cfg.Bin.Backup
	if role == "primary" {
		bin = l.cfg.Bin.Primary
	}
	args := []string{"-node", name, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-nats", l.NATSURL,
		"-db", filepath.Join(l.cfg.Dir, "entities.db"), "-secret-file", l.secret}
	args = append(append(args, l.cfg.NodeArgs...), extra...)
	p, err := Start(name, bin, args, filepath.Join(l.cfg.Dir, name+".log"), env...)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.Nodes[name] = p
	l.ports[name] = port
	l.mu.Unlock()
	url := fmt.Sprintf("http://127.0.0.1:%d/understudy/status", port)
	if err := waitHTTP(ctx, p, url, func(resp *http.Response) bool {
		var st struct {
			Ready bool   `json:"ready"`
			Role  string `json:"role"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil || !st.Ready {
			return false
		}
		return true
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// logTail returns the last lines of a process's log, joined on one line:
// an error that says why a process exited must not depend on a log file
// that a temporary directory may take with it.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// waitHTTP polls url until ok accepts an answer, the process exits, or
// ctx ends.
func waitHTTP(ctx context.Context, p *Process, url string, ok func(*http.Response) bool) error {
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			good := ok(resp)
			resp.Body.Close()
			if good {
				return nil
			}
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited while starting (%v); the end of %s: %s", p.Name, p.err, p.Log, logTail(p.Log))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (see %s): %w", p.Name, p.Log, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops every process gracefully: nodes first (the primary hands
// over), then gateways.
func (l *Local) Close() {
	l.mu.Lock()
	nodes := make([]*Process, 0, len(l.Nodes))
	for _, p := range l.Nodes {
		nodes = append(nodes, p)
	}
	gws := append([]*Process(nil), l.Gateways...)
	l.mu.Unlock()
	for _, p := range nodes {
		p.Stop(15 * time.Second)
	}
	for _, p := range gws {
		p.Stop(15 * time.Second)
	}
}
