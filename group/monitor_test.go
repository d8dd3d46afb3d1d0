package group

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
)

// TestMonitorStartWaitsForNATS: a monitor started while its server is
// down (a gateway restarted while NATS restarts, or while a cluster elects
// the bucket's leader) watches the entry once the server is back, instead
// of failing its start.
func TestMonitorStartWaitsForNATS(t *testing.T) {
	srv := brokertest.Start(t)
	newCluster(t, srv)
	// Without a reconnect buffer a request fails at once while the server
	// is away, as it does when no server answers in time.
	nc := srv.Connect(t, brokertest.NoReconnectBuffer())
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	mon := NewMonitor(nc, kv, MonitorConfig{Logger: brokertest.Logger(t)})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- mon.Start(sctx) }()
	time.Sleep(time.Second) // a watch tried, and failed, meanwhile
	select {
	case err := <-started:
		t.Fatalf("started while the server was down: %v", err)
	default:
	}
	srv.Start()
	if err := <-started; err != nil {
		t.Fatalf("start after the server came back: %v", err)
	}
	mon.Close()
}
