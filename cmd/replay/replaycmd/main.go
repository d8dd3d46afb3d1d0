package replaycmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/cmd/internal/cli"
	"understudy/group"
	"understudy/model"
	"understudy/snapshot"
)

// Config is what a replay binary is built from: the applications it knows
// and where their entities come from.
type Config struct {
	// Name is the command's name in usage and errors. Default "replay".
	Name string

	// Registry holds the applications whose sessions the tool rebuilds
	// (show's values, diff, preview): the same definitions the nodes run.
	// Sessions of applications it does not hold are still listed and shown
	// from their raw step states. Required.
	Registry *model.Registry

	// Resolver resolves entity references for preview (labels and the
	// options of entity fields). Nil: preview opens the database that -db
	// names through package entity (SQLite or PostgreSQL), as nodes do.
	Resolver model.Resolver

	// Mem, if set, is offered by preview's -mem flag instead of a database:
	// the demo's in-memory entities.
	Mem model.Resolver

	// DefaultDB is -db's default. Default DefaultDB.
	DefaultDB string
}

// DefaultDB is the local deployment's entity database.
const DefaultDB = "understudy-data/entities.db"

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "replay"
	}
	if c.Registry == nil {
		c.Registry = model.NewRegistry()
	}
	if c.DefaultDB == "" {
		c.DefaultDB = DefaultDB
	}
	return c
}

// ErrUsage reports bad command-line arguments; usage has been printed.
var ErrUsage = errors.New("usage")

// Run is Main for a binary's main function: it runs the command in
// os.Args, prints an error to stderr, and exits 0 on success, 2 on a usage
// error and 1 on any other error.
func Run(cfg Config) {
	err := Main(context.Background(), cfg, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	os.Exit(ExitCode(err, cfg.withDefaults().Name, os.Stderr))
}

// ExitCode prints err (unless it is a usage error, whose usage was already
// printed) and returns the exit code for it.
func ExitCode(err error, name string, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// command is one subcommand: a file of this package each.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"status", "", "the group: owner, epoch, lease, fence, members and their heartbeats", runStatus},
	{"list", "", "sessions in the stream with their newest snapshot and current step", runList},
	{"history", "<session>", "every kept snapshot of a session, with fenced ones marked", runHistory},
	{"show", "<session>", "one snapshot: headers, envelope, values and step tree (-json, -diag)", runShow},
	{"diff", "<session> <a> <b>", "what changed between two snapshots of a session", runDiff},
	{"preview", "<session>", "the page the user saw at a snapshot, as text or HTML", runPreview},
	{"tail", "[session]", "follow snapshots as they arrive, of one session or all", runTail},
	{"export", "<session> <file>", "a session's kept history to a file of JSON lines", runExport},
	{"import", "<file>", "an exported history into a NATS, stream provisioned if missing", runImport},
	{"erase", "<session>", "erase a session everywhere: primary, backups, stream (operator permissions)", runErase},
	{"check", "", "preflight of this build: would every live session run as it is, migrate, or fail?", runCheck},
	{"diag", "[file]", "one CBOR snapshot (stdin or file) as diagnostic notation", runDiag},
}

// env is what a subcommand runs with.
type env struct {
	cfg    Config
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// Main runs the replay command line args (without the program name): a
// subcommand and its flags. It stops on SIGINT or SIGTERM, or when ctx
// ends (tail then returns nil). Errors are returned, not printed, except
// that usage is printed to stderr for a usage error (ErrUsage).
func Main(ctx context.Context, cfg Config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg = cfg.withDefaults()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if len(args) == 0 {
		e.usage()
		return ErrUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			for _, c := range commands {
				if c.name == args[1] {
					return c.run(ctx, e, []string{"-h"})
				}
			}
		}
		e.usage()
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", cfg.Name, name)
	e.usage()
	return ErrUsage
}

func (e *env) usage() {
	w := e.stderr
	fmt.Fprintf(w, "Usage: %s <command> [arguments] [flags]\n\n", e.cfg.Name)
	fmt.Fprintf(w, "Inspects understudy's sessions and replication group on NATS, and replays what a user saw.\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %-18s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags; every flag can also be set by the\nenvironment variable its usage shows (-nats is %s).\n", e.cfg.Name, cli.Env("nats"))
}

// flags is a subcommand's flag set and the flags most share.
type flags struct {
	*cli.FlagSet
	e       *env
	nats    *broker.Config
	prefix  *string
	group   *string
	json    *bool
	timeout *time.Duration
	key     *string
}

// newFlags starts a subcommand's flag set. what lists the shared flags it
// takes: "nats" (connection, -prefix, -timeout), "group", "json".
func (e *env) newFlags(name, args, about string, what ...string) *flags {
	full := e.cfg.Name + " " + name
	if args != "" {
		// cli's usage reads "Usage: <name> [flags]".
		full += " " + args
	}
	f := &flags{FlagSet: cli.NewFlagSet(full, about, e.stderr), e: e}
	for _, w := range what {
		switch w {
		case "nats":
			f.nats = cli.NATS(f.FlagSet, broker.DefaultURL)
			f.prefix = f.String("prefix", broker.DefaultPrefix, "subject, stream and bucket prefix")
			f.timeout = f.Duration("timeout", 30*time.Second, "bound on connecting and on the whole command (tail, check: on connecting)")
			f.key = f.String("key", "", "key file that opens sealed snapshot payloads (the nodes' -snapshot-key)")
		case "group":
			f.group = f.String("group", group.DefaultGroup, "replication group whose claims judge fenced snapshots")
		case "json":
			f.json = f.Bool("json", false, "print JSON for scripts instead of text")
		}
	}
	return f
}

// parse parses args, which may mix flags and positional arguments ("show
// <id> -seq 3" and "show -seq 3 <id>"), checks that there are between lo
// and hi positional ones and applies environment variables to flags not
// given.
func (f *flags) parse(args []string, lo, hi int) ([]string, error) {
	var pos []string
	for {
		if err := f.FlagSet.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, ErrUsage
		}
		args = f.FlagSet.FlagSet.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if err := f.FlagSet.Parse(nil); err != nil {
		fmt.Fprintln(f.Output(), err)
		return nil, ErrUsage
	}
	if len(pos) < lo || len(pos) > hi {
		if len(pos) < lo {
			fmt.Fprintf(f.Output(), "%s: missing arguments\n\n", f.Name())
		} else {
			fmt.Fprintf(f.Output(), "%s: unexpected argument %q\n\n", f.Name(), pos[hi])
		}
		f.Usage()
		return nil, ErrUsage
	}
	return pos, nil
}

// errHelp is returned by parse for -h: the command returns nil.
var errHelp = errors.New("help")

// done maps parse's errHelp to success.
func done(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// conn is a connection to NATS and the names of one deployment.
type conn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects broker.Subjects
	sealer   snapshot.Sealer // from -key; nil without one
	url      string          // without credentials
}

// connect connects as the flags say. It never waits longer than -timeout.
func (f *flags) connect(ctx context.Context) (*conn, error) {
	subjects, err := broker.NewSubjects(*f.prefix)
	if err != nil {
		return nil, fmt.Errorf("-prefix: %w", err)
	}
	var sealer snapshot.Sealer
	if *f.key != "" {
		k, err := snapshot.LoadKeyring(*f.key)
		if err != nil {
			return nil, fmt.Errorf("-key: %w", err)
		}
		sealer = k
	}
	cfg := *f.nats
	cfg.Name, cfg.Logger = f.e.cfg.Name, f.e.log
	cctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	nc, err := broker.Connect(cctx, cfg)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &conn{nc: nc, js: js, subjects: subjects, sealer: sealer, url: redactURL(cfg.URL)}, nil
}

func (c *conn) close() { c.nc.Close() }

// stream returns the session stream, which must exist.
func (c *conn) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := c.js.Stream(ctx, c.subjects.StreamName())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s not found at %s: nothing has run against this NATS, or -prefix is not %q: %w",
			c.subjects.StreamName(), c.url, c.subjects.Prefix(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", c.subjects.StreamName(), err)
	}
	return s, nil
}

// redactURL hides the user information of each server URL in a list.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, u := range parts {
		u = strings.TrimSpace(u)
		if at := strings.LastIndex(u, "@"); at >= 0 {
			scheme := ""
			if j := strings.Index(u, "://"); j >= 0 && j < at {
				scheme = u[:j+3]
			}
			u = scheme + "redacted@" + u[at+1:]
		}
		parts[i] = u
	}
	return strings.Join(parts, ",")
}

// withTimeout bounds a command by -timeout.
func (f *flags) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, *f.timeout)
}

// sessionArg checks a session id given on the command line before it
// becomes part of a subject.
func sessionArg(s string) (model.SessionID, error) {
	return model.ParseSessionID(s)
}
