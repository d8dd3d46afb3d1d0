// Package nodecmd is cmd/primary and cmd/backup: one serving node of the
// demo application, configured by flags and environment variables. The two
// commands differ only in the role a node starts in.
package nodecmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"understudy/broker"
	"understudy/cmd/internal/cli"
	"understudy/demo"
	"understudy/entity"
	"understudy/group"
	"understudy/internal/bugs"
	"understudy/node"
	"understudy/snapshot"
)

// Main runs a node of the demo application until ctx ends or SIGINT or
// SIGTERM arrives; then it hands over gracefully and returns.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, role node.Role) error {
	listen := map[node.Role]string{node.RolePrimary: "127.0.0.1:8081", node.RoleBackup: "127.0.0.1:8082"}[role]
	about := map[node.Role]string{
		node.RolePrimary: "Serves the demo application as the primary: claims the replication group if it is free\nor its owner's lease lapsed, otherwise runs as a backup.",
		node.RoleBackup:  "Follows the session stream as a backup and serves the demo application once promoted.",
	}[role]
	fs := cli.NewFlagSet(string(role), about, stderr)
	host, _ := os.Hostname()
	name := fs.String("node", sanitize(host)+"-"+string(role), "this node's name, unique in the group")
	fs.StringVar(&listen, "listen", listen, "HTTP listen address")
	address := fs.String("address", "", "URL gateways reach this node at (default http://<listen>)")
	natsCfg := cli.NATS(fs, broker.DefaultURL)
	prefix := fs.String("prefix", broker.DefaultPrefix, "subject and stream prefix")
	groupName := fs.String("group", group.DefaultGroup, "replication group")
	lease := fs.Duration("lease", group.DefaultLease, "the primary's lease")
	fastPath := fs.String("fast-path", "auto", "replace a crashed primary without waiting out its lease: auto (single NATS server only), on, off")
	replication := fs.String("replication", string(node.Sync), "sync (answer after JetStream's ack), async, or off (no failover)")
	cold := fs.Bool("cold", false, "cold standby: hold no copies, read sessions from the stream when taking over")
	maxSessions := fs.Int("max-sessions", node.DefaultMaxSessions, "cap on live sessions; new ones beyond it get 503")
	perMinute := fs.Int("new-per-minute", node.DefaultNewPerMinute, "new sessions per client address per minute (-1: no limit)")
	maxInFlight := fs.Int("max-in-flight", node.DefaultMaxInFlight, "requests to the application worked on at once; past it they wait -admission-wait for a place, then get 503 busy, which the gateway retries (-1: no bound)")
	admissionWait := fs.Duration("admission-wait", node.DefaultAdmissionWait, "how long a request past -max-in-flight waits for a place")
	idle := fs.Duration("idle", node.DefaultIdle, "end sessions idle for this long")
	linger := fs.Duration("finished-linger", node.DefaultFinishedLinger, "keep a finished session's summary this long")
	retention := fs.Duration("retention", node.DefaultRetention, "purge an ended session's history from the stream this long after it ended (-1s: never)")
	snapshotKey := fs.String("snapshot-key", "", "key file: seal snapshots with AES-256-GCM and open sealed ones (lines \"<id> <64 hex digits>\", the last one seals; the same file on every node and for replay -key)")
	db := fs.String("db", "understudy-data/entities.db", "entity database: a SQLite file (shared by the nodes of a machine) or a postgres:// DSN")
	secretFile := fs.String("secret-file", "", "file with the secret that signs CSRF tokens (the same for every node of the group)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate file")
	tlsKey := fs.String("tls-key", "", "key file of -tls-cert")
	replicas := fs.Int("replicas", 1, "replicas of the stream and bucket if this node creates them (3 on a NATS cluster)")
	release := fs.String("demo", demo.ReleaseV1, "the demo's release to run: "+strings.Join(demo.Releases, " or ")+" (v2 adds version 2 of the quote and the migrations between the two)")
	plant := fs.String("plant-bugs", "", "for the tests that show the checkers find known defects only, never in production: reintroduce them (comma-separated: "+strings.Join(bugs.Names(), ", ")+")")
	logger := cli.Logging(fs, stdout)
	debug := cli.Debug(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	planted, err := bugs.Parse(*plant)
	if err != nil {
		return fmt.Errorf("-plant-bugs: %w", err)
	}
	if planted != (bugs.Set{}) {
		fmt.Fprintf(os.Stderr, "WARNING: planted bugs %s: this node breaks the failover contract on purpose\n", planted)
	}
	log, err := logger()
	if err != nil {
		return err
	}
	reg, err := demo.Release(*release)
	if err != nil {
		return fmt.Errorf("-demo: %w", err)
	}
	subjects, err := broker.NewSubjects(*prefix)
	if err != nil {
		return err
	}
	fp, ok := map[string]group.FastPath{"auto": group.FastPathAuto, "on": group.FastPathOn, "off": group.FastPathOff}[*fastPath]
	if !ok {
		return fmt.Errorf("-fast-path %q: auto, on or off", *fastPath)
	}
	var secret []byte
	if *secretFile != "" {
		if secret, err = os.ReadFile(*secretFile); err != nil {
			return fmt.Errorf("-secret-file: %w", err)
		}
	} else {
		log.Warn("no -secret-file: CSRF tokens are derived from the session id alone")
	}

	var sealer snapshot.Sealer
	if *snapshotKey != "" {
		k, err := snapshot.LoadKeyring(*snapshotKey)
		if err != nil {
			return fmt.Errorf("-snapshot-key: %w", err)
		}
		log.Info("snapshots are sealed", "key", k.Current(), "allow_unsealed", k.AllowUnsealed)
		sealer = k
	}

	if !strings.Contains(*db, "://") {
		if dir := dirOf(*db); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("-db: %w", err)
			}
		}
	}
	store, err := entity.Open(ctx, entity.Config{DSN: *db, Seed: demo.Entities()})
	if err != nil {
		return err
	}
	defer store.Close()

	natsCfg.Logger = log
	n, err := node.New(node.Config{
		Node: *name, Role: role, Listen: listen, Address: *address, NATS: *natsCfg, Subjects: subjects,
		Stream:      broker.StreamConfig{Replicas: *replicas},
		Bucket:      broker.BucketConfig{Replicas: *replicas},
		Group:       group.Config{Group: *groupName, Lease: *lease, FastPath: fp},
		Replication: node.Replication(*replication), Cold: *cold,
		MaxSessions: *maxSessions, NewPerMinute: *perMinute, MaxInFlight: *maxInFlight, AdmissionWait: *admissionWait, Idle: *idle, FinishedLinger: *linger, Retention: *retention,
		Secret: secret, Sealer: sealer, TLSCert: *tlsCert, TLSKey: *tlsKey, Logger: log,
		Fault: faultFromEnv(log), Bugs: planted,
	}, reg, store)
	if err != nil {
		return err
	}
	if _, err := n.Listen(); err != nil {
		return err
	}
	log.Info("demo release", "release", *release, "versions", reg.Versions(demo.AppName))
	start := time.Now()
	err = cli.Run(ctx, log, n.Run, debug(log))
	log.Info("stopped", "uptime", time.Since(start).Round(time.Millisecond))
	return err
}

func dirOf(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i > 0 {
		return path[:i]
	}
	return ""
}

// sanitize makes a host name a valid node name.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "node"
	}
	return b.String()
}

// FaultEnv names the environment variable of fault-injection tests:
// "point:n" kills the process with SIGKILL, as kill -9 would, the n-th time
// the node reaches point (see node.Config.Fault); "point:n:stop" stops it
// there with SIGSTOP instead, as a scheduler that starves it would, until
// the test sends SIGCONT.
const FaultEnv = "UNDERSTUDY_FAULT"

func faultFromEnv(log *slog.Logger) func(string) {
	spec := os.Getenv(FaultEnv)
	if spec == "" {
		return nil
	}
	parts := strings.SplitN(spec, ":", 3)
	point := parts[0]
	n := 1
	if len(parts) > 1 {
		if v, err := strconv.Atoi(parts[1]); err == nil && v >= 1 {
			n = v
		}
	}
	sig, action := syscall.SIGKILL, "killing"
	if len(parts) > 2 && parts[2] == "stop" {
		sig, action = syscall.SIGSTOP, "stopping"
	}
	var mu sync.Mutex
	seen := 0
	log.Warn("fault injection armed", "point", point, "at", n, "signal", sig.String())
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		seen++
		hit := seen == n
		mu.Unlock()
		if !hit {
			return
		}
		log.Warn("fault injection: "+action+" this process", "point", point)
		syscall.Kill(os.Getpid(), sig)
		if sig == syscall.SIGKILL {
			select {} // never returns
		}
	}
}
