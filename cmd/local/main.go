// Command local runs the whole understudy deployment on this machine: a
// gateway with embedded NATS, a primary and a backup as separate
// processes, and the demo application behind the gateway.
//
//	go run ./cmd/local
//
// It builds the binaries, starts the processes, prints the address and the
// process ids, restarts a node that dies as a backup (so you can kill the
// primary again and again), and stops everything on Ctrl-C.
//
// Its nodes run a release of the demo (-demo v1 or v2). Commands typed
// while it runs restart a node on another release, hand the primary over
// and show the group, for a rolling upgrade while people are in the
// middle of their quotes (type help):
//
//	restart node-b v2    # a backup on the new release
//	restart node-a v2    # the primary hands over to node-b, and comes back on v2
//	handover             # and back to node-a
//	status
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"understudy/cmd/internal/cli"
	"understudy/demo"
	"understudy/internal/deploy"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("local", "Runs the local deployment: gateway with embedded NATS, a primary, backups, the demo application.", stderr)
	data := fs.String("data", "understudy-data", "directory for NATS storage, the entity database and logs")
	port := fs.Int("port", 8080, "the gateway's port: the demo application is at http://localhost:<port>")
	natsPort := fs.Int("nats-port", 4222, "the embedded NATS server's port (the nats CLI connects to it)")
	backups := fs.Int("backups", 1, "backup nodes")
	restart := fs.Bool("restart", true, "restart a node that dies, as a backup")
	snapshotKey := fs.String("snapshot-key", "", "key file the nodes seal snapshots with (see primary -h)")
	release := fs.String("demo", demo.ReleaseV1, "the demo's release the nodes start on: "+strings.Join(demo.Releases, " or ")+" (type help while it runs to restart nodes on another)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if _, err := demo.Release(*release); err != nil {
		return fmt.Errorf("-demo: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := deploy.ModuleRoot(".")
	if err != nil {
		return err
	}
	dataDir, _ := filepath.Abs(*data)
	fmt.Fprintln(stdout, "building gateway, primary and backup...")
	bins, err := deploy.Build(ctx, root, filepath.Join(root, "bin"), stderr)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var nodeArgs []string
	if *snapshotKey != "" {
		key, err := filepath.Abs(*snapshotKey)
		if err != nil {
			return err
		}
		nodeArgs = append(nodeArgs, "-snapshot-key", key)
	}
	l, err := deploy.StartLocal(startCtx, deploy.Config{Bin: bins, Dir: dataDir, Gateway: *port, NATS: *natsPort, NodeArgs: nodeArgs})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stdout, "\nstopping: the primary hands over, then everything stops...")
		l.Close()
	}()
	names := []string{"node-a"}
	for i := range *backups {
		names = append(names, fmt.Sprintf("node-%c", 'b'+i))
	}
	releases := map[string]string{}
	for i, n := range names {
		role := "backup"
		if i == 0 {
			role = "primary"
		}
		if _, err := l.StartNode(startCtx, n, role, "-demo", *release); err != nil {
			return err
		}
		releases[n] = *release
	}
	gw := l.Gateways[0]
	owner := waitOwner(ctx, l.GatewayURL(0))
	fmt.Fprintf(stdout, "\nunderstudy is running.\n\n  demo application   http://localhost:%d\n", *port)
	fmt.Fprintf(stdout, "  gateway            pid %-7d  embedded NATS on %s\n", gw.PID(), l.NATSURL)
	for _, n := range names {
		role := "backup"
		if n == owner {
			role = "primary"
		}
		fmt.Fprintf(stdout, "  %-8s %-9s pid %-7d  %s  release %s\n", n, role, l.Nodes[n].PID(), l.NodeURL(n), releases[n])
	}
	fmt.Fprintf(stdout, "\nTo watch a failover, fill in part of the application, then kill the primary:\n\n    kill -9 %d\n\n", l.Nodes[owner].PID())
	if *restart {
		fmt.Fprintln(stdout, "A node that dies is restarted as a backup after 2 seconds, so you can do it again.")
	}
	fmt.Fprintf(stdout, "Logs: %s/*.log   Group status: http://localhost:%d/understudy/group   Ctrl-C stops everything.\n", dataDir, *port)
	fmt.Fprintf(stdout, "Type help for the commands of a rolling upgrade (restart a node on another release, hand over).\n\n")

	sup := &supervisor{out: stdout, l: l, names: names, releases: releases, restart: *restart}
	return sup.run(ctx, lines(stdin))
}

// lines sends each line read from r; the channel closes at its end. The
// reading goroutine ends with the process: a terminal's read cannot be
// interrupted.
func lines(r io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// supervisor reports ownership changes, restarts dead nodes as backups
// on the release they ran, and carries out typed commands.
type supervisor struct {
	out      io.Writer
	l        *deploy.Local
	names    []string
	releases map[string]string // the release each node runs
	restart  bool
	last     string // the owner last reported
}

func (s *supervisor) run(ctx context.Context, cmds <-chan string) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	dead := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-cmds:
			if !ok {
				cmds = nil // stdin closed: no more commands, the deployment runs on
				continue
			}
			s.command(ctx, line)
			continue
		case <-t.C:
		}
		s.reportOwner()
		if done, _ := s.l.Gateways[0].Exited(); done {
			return fmt.Errorf("the gateway exited: see %s", s.l.Gateways[0].Log)
		}
		sort.Strings(s.names)
		for _, n := range s.names {
			p := s.l.Nodes[n]
			if exited, _ := p.Exited(); !exited {
				delete(dead, n)
				continue
			}
			when, seen := dead[n]
			if !seen {
				dead[n] = time.Now()
				fmt.Fprintf(s.out, "%s  %s (pid %d) died\n", stamp(), n, p.PID())
				continue
			}
			if s.restart && time.Since(when) > 2*time.Second {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				np, err := s.l.StartNode(rctx, n, "backup", "-demo", s.releases[n])
				cancel()
				if err != nil {
					fmt.Fprintf(s.out, "restarting %s: %v\n", n, err)
					continue
				}
				delete(dead, n)
				fmt.Fprintf(s.out, "%s  %s restarted as a backup (pid %d): kill -9 %d to fail over again\n",
					stamp(), n, np.PID(), pidOf(s.l, s.last))
			}
		}
	}
}

func stamp() string { return time.Now().Format("15:04:05.000") }

// reportOwner prints a change of primary.
func (s *supervisor) reportOwner() {
	st, err := groupStatus(s.l.GatewayURL(0))
	if err != nil || st.Owner == "" || st.Owner == s.last {
		return
	}
	if s.last != "" {
		fmt.Fprintf(s.out, "%s  %s is now the primary (epoch %d, pid %d)\n", stamp(), st.Owner, st.Epoch, pidOf(s.l, st.Owner))
	}
	s.last = st.Owner
}

const help = `commands:
  restart <node> [release]   stop the node gracefully (a primary hands over first) and start it
                             again as a backup, on the release given (` + "v1 or v2" + `) or the one it ran
  handover                   stop the primary gracefully and start it again as a backup: a backup
                             takes over at once
  status                     the nodes, their releases, and what every live member can rebuild
  help                       this
`

// command carries out one typed command.
func (s *supervisor) command(ctx context.Context, line string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return
	}
	switch {
	case f[0] == "help" || f[0] == "?":
		fmt.Fprint(s.out, help)
	case f[0] == "status" && len(f) == 1:
		s.status()
	case f[0] == "handover" && len(f) == 1:
		st, err := groupStatus(s.l.GatewayURL(0))
		if err != nil || st.Owner == "" {
			fmt.Fprintf(s.out, "no primary to hand over (%v)\n", err)
			return
		}
		s.restartNode(ctx, st.Owner, s.releases[st.Owner])
	case f[0] == "restart" && (len(f) == 2 || len(f) == 3):
		if _, ok := s.l.Nodes[f[1]]; !ok {
			fmt.Fprintf(s.out, "no node %q: %s\n", f[1], strings.Join(s.names, ", "))
			return
		}
		release := s.releases[f[1]]
		if len(f) == 3 {
			release = f[2]
		}
		if _, err := demo.Release(release); err != nil {
			fmt.Fprintln(s.out, err)
			return
		}
		s.restartNode(ctx, f[1], release)
	default:
		fmt.Fprintf(s.out, "%q: not a command\n%s", line, help)
	}
}

// restartNode stops a node with SIGTERM (a primary hands over: a backup
// claims the group at once) and starts it again as a backup on release.
func (s *supervisor) restartNode(ctx context.Context, name, release string) {
	p := s.l.Nodes[name]
	fmt.Fprintf(s.out, "%s  stopping %s (pid %d) gracefully...\n", stamp(), name, p.PID())
	if err := p.Stop(15 * time.Second); err != nil {
		fmt.Fprintln(s.out, err)
	}
	s.reportOwner()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	np, err := s.l.StartNode(rctx, name, "backup", "-demo", release)
	if err != nil {
		fmt.Fprintf(s.out, "starting %s: %v\n", name, err)
		return
	}
	s.releases[name] = release
	fmt.Fprintf(s.out, "%s  %s runs release %s as a backup (pid %d)\n", stamp(), name, release, np.PID())
}

// status prints the nodes and what the group can rebuild, from the
// gateway's view of the members' heartbeats.
func (s *supervisor) status() {
	st, err := groupStatus(s.l.GatewayURL(0))
	if err != nil {
		fmt.Fprintf(s.out, "group status: %v\n", err)
		return
	}
	common := map[string]int{}
	live := 0
	for _, m := range st.Members {
		if m.Gone {
			continue
		}
		live++
		for _, a := range m.Apps {
			common[a]++
		}
	}
	for _, n := range s.names {
		role := "backup"
		if n == st.Owner {
			role = "primary"
		}
		apps := "(no heartbeat)"
		for _, m := range st.Members {
			if m.Node == n && !m.Gone {
				apps = strings.Join(m.Apps, " ")
			}
		}
		fmt.Fprintf(s.out, "  %-8s %-8s release %s  pid %-7d  materializes %s\n", n, role, s.releases[n], pidOf(s.l, n), apps)
	}
	var all []string
	for a, k := range common {
		if k == live {
			all = append(all, a)
		}
	}
	sort.Strings(all)
	fmt.Fprintf(s.out, "  every live member materializes %s: new sessions start on, and running ones move to, the newest of these\n", strings.Join(all, " "))
}

func pidOf(l *deploy.Local, name string) int {
	if p, ok := l.Nodes[name]; ok {
		return p.PID()
	}
	return 0
}

type status struct {
	Owner   string `json:"owner"`
	Epoch   uint64 `json:"epoch"`
	Members []struct {
		Node string   `json:"node"`
		Gone bool     `json:"gone"`
		Apps []string `json:"apps"`
	} `json:"members"`
}

func groupStatus(base string) (status, error) {
	var st status
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/understudy/group")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func waitOwner(ctx context.Context, base string) string {
	for {
		if st, err := groupStatus(base); err == nil && st.Owner != "" {
			return st.Owner
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(50 * time.Millisecond):
		}
	}
}
