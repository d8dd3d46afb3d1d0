// Command local runs the whole understudy deployment on this machine: a
// gateway with embedded NATS, a primary and a backup as separate
// processes, and the demo application behind the gateway.
//
//	go run ./cmd/local
//
// It builds the binaries, starts the processes, prints the address and the
// process ids, restarts a node that dies as a backup (so you can kill the
// primary again and again), and stops everything on Ctrl-C.
package main

import (
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
	"syscall"
	"time"

	"understudy/cmd/internal/cli"
	"understudy/internal/deploy"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("local", "Runs the local deployment: gateway with embedded NATS, a primary, backups, the demo application.", stderr)
	data := fs.String("data", "understudy-data", "directory for NATS storage, the entity database and logs")
	port := fs.Int("port", 8080, "the gateway's port: the demo application is at http://localhost:<port>")
	natsPort := fs.Int("nats-port", 4222, "the embedded NATS server's port (the nats CLI connects to it)")
	backups := fs.Int("backups", 1, "backup nodes")
	restart := fs.Bool("restart", true, "restart a node that dies, as a backup")
	snapshotKey := fs.String("snapshot-key", "", "key file the nodes seal snapshots with (see primary -h)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
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
	for i, n := range names {
		role := "backup"
		if i == 0 {
			role = "primary"
		}
		if _, err := l.StartNode(startCtx, n, role); err != nil {
			return err
		}
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
		fmt.Fprintf(stdout, "  %-8s %-9s pid %-7d  %s\n", n, role, l.Nodes[n].PID(), l.NodeURL(n))
	}
	fmt.Fprintf(stdout, "\nTo watch a failover, fill in part of the application, then kill the primary:\n\n    kill -9 %d\n\n", l.Nodes[owner].PID())
	if *restart {
		fmt.Fprintln(stdout, "A node that dies is restarted as a backup after 2 seconds, so you can do it again.")
	}
	fmt.Fprintf(stdout, "Logs: %s/*.log   Group status: http://localhost:%d/understudy/group   Ctrl-C stops everything.\n\n", dataDir, *port)

	return supervise(ctx, stdout, l, names, *restart)
}

// supervise reports ownership changes and restarts dead nodes as backups.
func supervise(ctx context.Context, out io.Writer, l *deploy.Local, names []string, restart bool) error {
	last := ""
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	dead := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if st, err := groupStatus(l.GatewayURL(0)); err == nil && st.Owner != "" && st.Owner != last {
			if last != "" {
				fmt.Fprintf(out, "%s  %s is now the primary (epoch %d, pid %d)\n", time.Now().Format("15:04:05.000"), st.Owner, st.Epoch, pidOf(l, st.Owner))
			}
			last = st.Owner
		}
		if done, _ := l.Gateways[0].Exited(); done {
			return fmt.Errorf("the gateway exited: see %s", l.Gateways[0].Log)
		}
		sort.Strings(names)
		for _, n := range names {
			p := l.Nodes[n]
			if exited, _ := p.Exited(); !exited {
				continue
			}
			when, seen := dead[n]
			if !seen {
				dead[n] = time.Now()
				fmt.Fprintf(out, "%s  %s (pid %d) died\n", time.Now().Format("15:04:05.000"), n, p.PID())
				continue
			}
			if restart && time.Since(when) > 2*time.Second {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				np, err := l.StartNode(rctx, n, "backup")
				cancel()
				if err != nil {
					fmt.Fprintf(out, "restarting %s: %v\n", n, err)
					continue
				}
				delete(dead, n)
				fmt.Fprintf(out, "%s  %s restarted as a backup (pid %d): kill -9 %d to fail over again\n",
					time.Now().Format("15:04:05.000"), n, np.PID(), pidOf(l, last))
			}
		}
	}
}

func pidOf(l *deploy.Local, name string) int {
	if p, ok := l.Nodes[name]; ok {
		return p.PID()
	}
	return 0
}

type status struct {
	Owner string `json:"owner"`
	Epoch uint64 `json:"epoch"`
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
