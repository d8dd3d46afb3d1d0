// Command replay inspects understudy's sessions and replication group on
// NATS and replays what a user saw, for the demo application: status,
// list, history, show, diff, preview, tail, export, import and diag. See
// package replaycmd for the commands, and for building the same tool
// around your own applications.
//
//	go run ./cmd/replay status
//	go run ./cmd/replay list
//	go run ./cmd/replay preview <session> -seq 3 -html page.html
package main

import (
	"context"
	"io"
	"os"

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
	return replaycmd.Main(ctx, config(), args, stdin, stdout, stderr)
}

// config is the demo's tool: its applications, and its entities in memory
// with -mem (else from the nodes' database, -db).
func config() replaycmd.Config {
	return replaycmd.Config{Name: "replay", Registry: demo.Registry(), Mem: demo.Resolver()}
}
