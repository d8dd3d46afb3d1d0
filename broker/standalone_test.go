package broker_test

import (
	"os"
	"path/filepath"
	"testing"

	"understudy/broker"
	"understudy/broker/brokertest"
)

// TestAskStandalone: the crash fast path is allowed only where the server
// says it is standalone. A server that accepts leafnode connections is a
// single server with an empty cluster name, yet interest on it propagates
// asynchronously: it must not say so (defect 13).
func TestAskStandalone(t *testing.T) {
	subjects := broker.Subjects{}
	t.Run("standalone", func(t *testing.T) {
		srv := brokertest.Start(t)
		nc := srv.Connect(t)
		if broker.AskStandalone(t.Context(), nc, subjects) {
			t.Fatal("standalone before anyone says so")
		}
		srv.AnswerStandalone(t, subjects)
		if !broker.AskStandalone(t.Context(), nc, subjects) {
			t.Fatal("a standalone server that says so is not believed")
		}
	})
	t.Run("leafnodes", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "leaf.conf")
		if err := os.WriteFile(conf, []byte("leafnodes { port: -1 }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		srv := brokertest.Start(t, brokertest.WithConfigFile(conf))
		nc := srv.Connect(t)
		if nc.ConnectedClusterName() != "" {
			t.Fatalf("cluster name %q: the case this test is about has none", nc.ConnectedClusterName())
		}
		srv.AnswerStandalone(t, subjects)
		if _, ok := srv.Standalone(); ok {
			t.Fatal("a server accepting leafnodes says it is standalone")
		}
		if broker.AskStandalone(t.Context(), nc, subjects) {
			t.Fatal("fast path allowed on a server with leafnodes")
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := brokertest.StartCluster(t, 3)
		nc := c.Connect(t)
		if broker.AskStandalone(t.Context(), nc, subjects) {
			t.Fatal("fast path allowed on a cluster")
		}
	})
}
