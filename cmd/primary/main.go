// Command primary runs a serving node of the demo application that starts
// as the primary: it claims the replication group if it is free or its
// owner's lease has lapsed, and otherwise runs as a backup. See -h.
package main

import (
	"context"
	"fmt"
	"os"

	"understudy/cmd/internal/nodecmd"
	"understudy/node"
)

func main() {
	if err := nodecmd.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, node.RolePrimary); err != nil {
		fmt.Fprintln(os.Stderr, "primary:", err)
		os.Exit(1)
	}
}
