package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
)

// TestClusterReplicatedStreamSurvivesServerStop forms a three-server
// cluster, provisions the replicated stream and bucket, stops the server
// leading the stream, and checks that acknowledged snapshots are still
// there and new ones are accepted once a new leader is elected.
func TestClusterReplicatedStreamSurvivesServerStop(t *testing.T) {
	if testing.Short() {
		t.Skip("leader elections take seconds")
	}
	start := time.Now()
	c := brokertest.StartCluster(t, 3)
	t.Logf("cluster formed in %s", time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := c.JetStream(t, brokertest.NoReconnectBuffer())
	log := brokertest.Logger(t)
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Replicas: 3, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Replicas: 3, Logger: log}); err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}
	kv, err := broker.EnsureBucket(ctx, js, broker.BucketConfig{Replicas: 3, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "g1", []byte("epoch 1")); err != nil {
		t.Fatal(err)
	}

	var subj broker.Subjects
	subject, err := subj.SessionSubject("s1")
	if err != nil {
		t.Fatal(err)
	}
	name := stream.CachedInfo().Config.Name
	leader := c.WaitForStreamLeader(t, name)
	if _, err := js.Publish(ctx, subject, []byte("before")); err != nil {
		t.Fatal(err)
	}

	stopped := time.Now()
	leader.Stop()
	next := c.WaitForStreamLeader(t, name)
	if next == leader {
		t.Fatal("stopped server still leads the stream")
	}
	t.Logf("new stream leader in %s", time.Since(stopped))

	// The client may be reconnecting to another server; retry until a
	// publish is acknowledged.
	var ack *jetstream.PubAck
	brokertest.WaitFor(t, 30*time.Second, "publish acknowledged after the stop", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		ack, err = js.Publish(pctx, subject, []byte("after"), jetstream.WithMsgID("after-1"))
		return err == nil
	})
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "after" || msg.Sequence != ack.Sequence || ack.Sequence != 2 {
		t.Fatalf("last message %q seq %d, ack seq %d; want %q seq 2", msg.Data, msg.Sequence, ack.Sequence, "after")
	}
	// The bucket's leader may have been on the stopped server too, and its
	// election may still be going on (no responders): read until it
	// answers. A missing key is an answer, and fails below.
	var entry jetstream.KeyValueEntry
	brokertest.WaitFor(t, 30*time.Second, "group entry readable after the stop", func() bool {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		defer gcancel()
		entry, err = kv.Get(gctx, "g1")
		return err == nil || errors.Is(err, jetstream.ErrKeyNotFound)
	})
	if err != nil || string(entry.Value()) != "epoch 1" {
		t.Fatalf("group entry after the stop: %v, %v", entry, err)
	}

	// The stopped server comes back on its store and catches up.
	leader.Restart()
	c.WaitForStreamLeader(t, name)
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Replicas: 1, Logger: log}); !errors.Is(err, broker.ErrIncompatibleStream) {
		t.Fatalf("EnsureStream with 1 replica on the 3-replica stream = %v, want ErrIncompatibleStream", err)
	}
	t.Logf("total %s", time.Since(start))
}
