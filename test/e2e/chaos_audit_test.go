//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/snapshot"
)

// audit reads every snapshot the session stream stores, as it stores them,
// and says which interactions were stored twice. A client cannot see an
// interaction applied twice when applying it again gives the same answer
// (most steps of a form do); the stream can: within one epoch a session's
// interaction sequence is stored once, and a second snapshot of the same
// epoch and sequence with another payload (a retried publish of the same
// one is deduplicated) is the interaction applied again. Snapshots of
// different epochs at one sequence are a fenced primary's and its
// successor's, and legitimate.
type audit struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	stored  map[string]map[[2]uint64][]uint64 // session -> (epoch, seq) -> stream sequences
	bad     []string                          // messages that are no snapshot
	pending uint64                            // what the stream held beyond the last message read, when it was read
	read    int
}

// startAudit follows the session stream from its start on a connection of
// its own to url (straight to NATS, past the injuries of the nodes').
func startAudit(t *testing.T, url string) *audit {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	var subj broker.Subjects
	ctx, cancel := context.WithCancel(context.Background())
	a := &audit{nc: nc, cancel: cancel, done: make(chan struct{}), stored: map[string]map[[2]uint64][]uint64{}}
	go func() {
		defer close(a.done)
		// The stream is made by the first node; an ordered consumer
		// recovers by itself from NATS restarts and leader changes.
		for ctx.Err() == nil {
			stream, err := js.Stream(ctx, subj.StreamName())
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj.SessionFilter()}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			cc, err := cons.Consume(func(m jetstream.Msg) { a.add(subj, m) })
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			<-ctx.Done()
			cc.Stop()
		}
	}()
	t.Cleanup(a.close)
	return a
}

func (a *audit) add(subj broker.Subjects, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		a.mu.Lock()
		a.bad = append(a.bad, fmt.Sprintf("a message on %s without metadata: %v", m.Subject(), err))
		a.mu.Unlock()
		return
	}
	meta, err := snapshot.ParseMeta(subj, nil, m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.read++
	a.pending = md.NumPending
	if err != nil {
		a.bad = append(a.bad, err.Error())
		return
	}
	if meta.Tombstone {
		return
	}
	by := a.stored[string(meta.Session)]
	if by == nil {
		by = map[[2]uint64][]uint64{}
		a.stored[string(meta.Session)] = by
	}
	k := [2]uint64{meta.Epoch, meta.Seq}
	by[k] = append(by[k], meta.StreamSeq)
}

// settle waits until the audit has read every snapshot stored so far: the
// last message it read had nothing pending behind it, and nothing came
// since (or a minute passes).
func (a *audit) settle(t *testing.T) {
	deadline := time.Now().Add(time.Minute)
	last := -1
	for time.Now().Before(deadline) {
		a.mu.Lock()
		read, pending := a.read, a.pending
		a.mu.Unlock()
		if pending == 0 && read == last {
			return
		}
		last = read
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("audit: still behind the session stream after a minute")
}

// twice returns, per session, a problem for each interaction stored twice
// in one epoch, and one for each message that is no snapshot.
func (a *audit) twice() (map[string][]string, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]string{}
	for s, by := range a.stored {
		keys := make([][2]uint64, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
		})
		for _, k := range keys {
			if seqs := by[k]; len(seqs) > 1 {
				out[s] = append(out[s], fmt.Sprintf("session %s: interaction seq %d stored %d times in epoch %d (stream seqs %v): applied twice", s, k[1], len(seqs), k[0], seqs))
			}
		}
	}
	return out, append([]string(nil), a.bad...)
}

// count returns how many stored messages the audit read.
func (a *audit) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.read
}

func (a *audit) close() {
	a.cancel()
	<-a.done
	a.nc.Close()
}
