package publisher

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/model/modeltest"
	"understudy/snapshot"
)

// TestTimeoutResolvedFromTheStream: the ack of a stored snapshot arrives
// too late; the publisher reads the stream, finds its snapshot, and
// reports it stored. Sealed, the snapshot it finds is the one it sent:
// the same sealed bytes.
func TestTimeoutResolvedFromTheStream(t *testing.T) {
	ctx := context.Background()
	srv := brokertest.Start(t)
	admin := srv.JetStream(t)
	stream, err := broker.EnsureStream(ctx, admin, broker.StreamConfig{Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := snapshot.ParseKeyring([]byte("k1 " + strings.Repeat("07", 32)))
	if err != nil {
		t.Fatal(err)
	}
	for i, sealer := range []snapshot.Sealer{nil, keys} {
		t.Run(fmt.Sprintf("sealed=%v", sealer != nil), func(t *testing.T) {
			proxy := brokertest.NewProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
			cfg := srv.ClientConfig(t, brokertest.NoReconnectBuffer())
			cfg.URL = proxy.URL()
			nc, err := broker.Connect(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			p := New(js, stream, Config{Node: "n1", Timeout: 300 * time.Millisecond, Sealer: sealer, Logger: brokertest.Logger(t)})

			run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(1+i), 1, "vehicle")
			if err != nil {
				t.Fatal(err)
			}
			s := run.Restamp("n1", 1).Session()

			resolving := 0
			testHookResolve = func() { resolving++; proxy.Resume() }
			defer func() { testHookResolve = nil }()
			proxy.Pause()
			ack, err := p.Publish(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if resolving != 1 || !ack.Duplicate {
				t.Fatalf("ack %+v after %d resolutions: the timeout path did not run", ack, resolving)
			}
			st, err := snapshot.Latest(ctx, stream, broker.Subjects{}, sealer, s.ID, nil)
			if err != nil || st.StreamSeq != ack.StreamSeq || st.Seq != s.Seq {
				t.Fatalf("stream holds %+v (%v), ack %+v", st.Meta, err, ack)
			}
		})
	}
}
