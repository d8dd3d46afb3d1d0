package publisher_test

import (
	"sync"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/publisher"
	"understudy/snapshot"
)

// TestClusterLosesAServerWhilePublishing: sessions are published to a
// 3-replica stream on a 3-server cluster while the stream's leader is
// stopped. Publishes fail or wait while a new leader is elected, and are
// retried; every snapshot that was acknowledged is in the stream afterwards
// (no acknowledged snapshot is lost), and each session's newest snapshot is
// its last acknowledged one.
func TestClusterLosesAServerWhilePublishing(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	js := c.JetStream(t, brokertest.NoReconnectBuffer())
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Replicas: 3, Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	leader := c.WaitForStreamLeader(t, broker.Subjects{}.StreamName())
	p := publisher.New(js, stream, publisher.Config{Node: "n1", Timeout: 2 * time.Second, Logger: brokertest.Logger(t)})

	const sessions = 8
	var mu sync.Mutex
	acked := map[model.SessionID]publisher.Ack{}
	seqs := map[model.SessionID]uint64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	base := stamped(t, 900, "payment/card/details", "n1", 1)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := base.Clone()
			s.ID = modeltest.SessionID(9000 + i)
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Seq++
				ack, err := p.Publish(ctx, s)
				if err != nil {
					// Not stored, or unknown: the next publish of the
					// session resolves it from the stream first.
					s.Seq--
					time.Sleep(20 * time.Millisecond) // back off while the cluster elects
					continue
				}
				mu.Lock()
				acked[s.ID], seqs[s.ID] = ack, s.Seq
				mu.Unlock()
			}
		}()
	}
	brokertest.WaitFor(t, 30*time.Second, "publishes before the stop", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == sessions
	})
	leader.Stop()
	var before map[model.SessionID]uint64
	mu.Lock()
	before = map[model.SessionID]uint64{}
	for id, s := range seqs {
		before[id] = s
	}
	mu.Unlock()
	brokertest.WaitFor(t, brokertest.LeaderTimeout, "publishes after the stop", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id, s := range seqs {
			if s <= before[id]+3 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()

	reader := c.JetStream(t)
	rs, err := reader.Stream(ctx, broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	for id, ack := range acked {
		st, err := snapshot.Latest(ctx, rs, broker.Subjects{}, nil, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.StreamSeq != ack.StreamSeq || st.Seq != seqs[id] {
			t.Errorf("session %s: stream holds seq %d at %d, last ack was seq %d at %d", id, st.Seq, st.StreamSeq, seqs[id], ack.StreamSeq)
		}
	}
}
