// Command replay inspects understudy's sessions and replication group on
// NATS and replays what a user saw, for the demo application: status,
// list, history, show, diff, preview, tail, export, import, erase, check
// and diag. See package replaycmd for the commands, and for building the
// same tool around your own applications.
//
//	go run ./cmd/replay status
//	go run ./cmd/replay list
//	go run ./cmd/replay preview <session> -seq 3 -html page.html
//	go run ./cmd/replay -demo v2 check     # before deploying the demo's second release
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"understudy/cmd/internal/cli"
	"understudy/cmd/replay/replaycmd"
	"understudy/demo"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(replaycmd.ExitCode(err, "replay", os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, os.Stdin, stdout, stderr)
}

// runWith is run with stdin given, for diag and import from tests.
func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, args, err := config(args)
	if err != nil {
		return err
	}
	return replaycmd.Main(ctx, cfg, args, stdin, stdout, stderr)
}

// config is the demo's tool: the applications of one of its releases, and
// its entities in memory with -mem (else from the nodes' database, -db).
// The release is named by -demo before the command (replay -demo v2
// check), or $UNDERSTUDY_DEMO, as for the nodes; v1 by default. A team
// builds the tool with its own registry instead (see replaycmd).
func config(args []string) (replaycmd.Config, []string, error) {
	release := os.Getenv(cli.Env("demo"))
	switch {
	case len(args) >= 2 && (args[0] == "-demo" || args[0] == "--demo"):
		release, args = args[1], args[2:]
	case len(args) >= 1 && strings.HasPrefix(args[0], "-demo="):
		release, args = strings.TrimPrefix(args[0], "-demo="), args[1:]
	}
	if release == "" {
		release = demo.ReleaseV1
	}
	reg, err := demo.Release(release)
	if err != nil {
		return replaycmd.Config{}, nil, fmt.Errorf("-demo: %w", err)
	}
	return replaycmd.Config{Name: "replay", Registry: reg, Mem: demo.Resolver()}, args, nil
}
