// Command backup runs a serving node of the demo application that starts
// as a backup: it follows the session stream and serves once promoted. See
// -h.
package main

import (
	"context"
	"fmt"
	"os"

	"understudy/cmd/internal/nodecmd"
	"understudy/node"
)

func main() {
	if err := nodecmd.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, node.RoleBackup); err != nil {
		fmt.Fprintln(os.Stderr, "backup:", err)
		os.Exit(1)
	}
}
