// Package seed fills a session stream with copies of template sessions,
// as a primary would have written them (the snapshot headers, the CBOR
// payload), under fresh ids: the streams benchmarks, catch-up figures and
// preflight figures are measured on. It is for measuring, not serving:
// nothing here expects a previous message of a session, and nothing is
// fenced.
package seed

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
)

// inFlight bounds the publishes waiting for their acks; js should allow
// at least as many (jetstream.WithPublishAsyncMaxPending).
const inFlight = 4096

// settleWait bounds the wait for a batch of acks.
const settleWait = 2 * time.Minute

// Sessions publishes n sessions to the session stream named by subjects,
// each a copy of templates[i % len(templates)] under the id id(i), and
// waits until every one is acknowledged. progress, if set, is called now
// and then with how many are written. It returns the bytes published.
func Sessions(ctx context.Context, js jetstream.JetStream, subjects broker.Subjects, templates []*model.Session, n int,
	id func(i int) model.SessionID, progress func(done int)) (int64, error) {
	if len(templates) == 0 {
		return 0, fmt.Errorf("seed: no template sessions")
	}
	var futures []jetstream.PubAckFuture
	settle := func() error {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(settleWait):
			return fmt.Errorf("seed: publishes not acknowledged within %v", settleWait)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("seed: %w", err)
			}
		}
		futures = futures[:0]
		return nil
	}
	var bytes int64
	last := time.Now()
	for i := range n {
		s := *templates[i%len(templates)] // shares the pool: only read
		s.ID = id(i)
		data, err := cbor.Marshal(&s)
		if err != nil {
			return bytes, err
		}
		bytes += int64(len(data))
		subject, err := subjects.SessionSubject(string(s.ID))
		if err != nil {
			return bytes, err
		}
		meta := snapshot.Meta{Session: s.ID, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Header: meta.Header(data), Data: data})
		if err != nil {
			return bytes, fmt.Errorf("seed: session %s: %w", s.ID, err)
		}
		if futures = append(futures, f); len(futures) == inFlight {
			if err := settle(); err != nil {
				return bytes, err
			}
		}
		if progress != nil && time.Since(last) > 5*time.Second {
			progress(i + 1)
			last = time.Now()
		}
	}
	return bytes, settle()
}

// MaxPending is the jetstream.WithPublishAsyncMaxPending a js given to
// Sessions should have.
const MaxPending = inFlight
