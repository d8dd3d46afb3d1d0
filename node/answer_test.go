package node_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/internal/bugs"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/snapshot"
)

// snapshotsOf returns every message of session id in the stream, oldest
// first.
func snapshotsOf(t *testing.T, srv *brokertest.Server, id model.SessionID) []snapshot.Stored {
	t.Helper()
	ctx := context.Background()
	stream, err := srv.JetStream(t).Stream(ctx, broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	subject, err := broker.Subjects{}.SessionSubject(string(id))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []snapshot.Stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			if err == jetstream.ErrMsgNotFound {
				continue
			}
			t.Fatal(err)
		}
		if raw.Subject != subject {
			continue
		}
		st, err := snapshot.FromRaw(broker.Subjects{}, nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

// appliedTwice returns the interaction sequences stored more than once in
// history, all of one epoch.
func appliedTwice(history []snapshot.Stored) []uint64 {
	seen := map[uint64]int{}
	var twice []uint64
	for _, st := range history {
		seen[st.Seq]++
		if seen[st.Seq] == 2 {
			twice = append(twice, st.Seq)
		}
	}
	return twice
}

// An interaction stored, then refused its answer because the lease lapsed
// meanwhile (503 lease), is the session's state from then on: the retry,
// once the lease is back in the same epoch, is stale and never applied
// again (defect 3 of the safety review). With the defect planted, the
// check below must see the interaction stored twice.
func TestRefusedAnswerIsNotAppliedTwice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
	}{
		{"fixed", bugs.Set{}},
		{"planted ForgetAfterRefusal", bugs.Set{ForgetAfterRefusal: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := brokertest.Start(t)
			proxy := brokertest.NewProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
			var armed atomic.Bool
			var a *running
			a = start(t, srv, "a", node.RolePrimary, func(c *node.Config) {
				c.NATS.URL = proxy.URL()
				c.Bugs = tc.planted
				c.Fault = func(point string) {
					if point != "after-publish" || !armed.CompareAndSwap(true, false) {
						return
					}
					// Stored: now the lease lapses before the answer.
					proxy.Pause()
					member := node.Member(a.Node)
					brokertest.WaitFor(t, 10*time.Second, "a's lease to lapse", func() bool { return !member.Valid() })
				}
			})
			c := newClient(t, a.URL)
			c.get()
			c.answer(1, 0)
			c.answer(1, 0)
			seq, csrf, step := c.page.Seq, c.page.CSRF, c.page.Step
			vals := modeltest.Answers(step, 1, 0)

			armed.Store(true)
			resp, p := c.postAt(seq, csrf, vals)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(node.HeaderUnavailable) != node.UnavailableLease {
				t.Fatalf("answer with the lease lapsed: %d %q %+v", resp.StatusCode, resp.Header.Get(node.HeaderUnavailable), p)
			}
			proxy.Resume()
			member := node.Member(a.Node)
			brokertest.WaitFor(t, 10*time.Second, "a's lease to be back", func() bool { return member.Valid() })
			if e := member.Epoch(); e != 1 {
				t.Fatalf("epoch %d after the lease came back, want 1 (the same)", e)
			}

			// The gateway's retry: the same interaction again.
			resp, p = c.postAt(seq, csrf, vals)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("retry: %d %+v", resp.StatusCode, p)
			}
			twice := appliedTwice(snapshotsOf(t, srv, c.page.Session))
			switch {
			case tc.planted == (bugs.Set{}) && len(twice) > 0:
				t.Fatalf("session %s: interaction seqs %v stored twice", c.page.Session, twice)
			case tc.planted != (bugs.Set{}) && len(twice) == 0:
				t.Fatalf("planted ForgetAfterRefusal: the check found no interaction stored twice")
			}
			if tc.planted == (bugs.Set{}) && !p.Stale {
				t.Errorf("retry of a stored interaction not answered as stale: %+v", p)
			}
		})
	}
}

// A node that lost the group and won it back while an interaction applied
// under the old epoch waited to publish must not answer it: its snapshot
// is fenced (defect 1). Whatever it answers, the session never goes back
// on what was answered. With the answer rule weakened to the lease only,
// the check must see the page go back.
func TestNoAnswerFromAnOlderEpoch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
	}{
		{"fixed", bugs.Set{}},
		{"planted AnswerAnyEpoch", bugs.Set{AnswerAnyEpoch: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := brokertest.Start(t)
			var armed atomic.Bool
			hold, release := make(chan struct{}), make(chan struct{})
			a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) {
				c.Bugs = tc.planted
				c.Fault = func(point string) {
					if point == "before-publish" && armed.CompareAndSwap(true, false) {
						close(hold)
						<-release
					}
				}
			})
			b := start(t, srv, "b", node.RoleBackup)
			c := newClient(t, a.URL)
			c.get()
			c.answer(1, 0)
			c.answer(1, 0)
			before := c.page.Step
			seq, csrf := c.page.Seq, c.page.CSRF
			vals := modeltest.Answers(before, 1, 0)

			armed.Store(true)
			type answer struct {
				code int
				p    page
			}
			answered := make(chan answer, 1)
			go func() {
				resp, p := c.postAt(seq, csrf, vals)
				answered <- answer{resp.StatusCode, p}
			}()
			<-hold
			// a loses the group to b, then b hands it back: a is the
			// primary of epoch 3 while the interaction waits, applied at 1.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ma, mb := node.Member(a.Node), node.Member(b.Node)
			if err := ma.Release(ctx); err != nil {
				t.Fatal(err)
			}
			brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool { st, ok := b.Status(); return ok && st.Role == "primary" })
			if err := mb.Release(ctx); err != nil {
				t.Fatal(err)
			}
			brokertest.WaitFor(t, 10*time.Second, "a to serve again", func() bool {
				st, ok := a.Status()
				return ok && st.Role == "primary" && st.Lease && st.Epoch == 3
			})
			close(release)
			got := <-answered

			// What the client was told, and what the session shows next.
			switch got.code {
			case http.StatusOK:
			case http.StatusServiceUnavailable:
				// The gateway retries: the same interaction again.
				resp, p := c.postAt(seq, csrf, vals)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("retry: %d %+v", resp.StatusCode, p)
				}
				got = answer{resp.StatusCode, p}
			default:
				t.Fatalf("answer: %d %+v", got.code, got.p)
			}
			told := got.p.Step
			resp, now := c.get()
			wentBack := resp.StatusCode != http.StatusOK || now.Step != told
			switch {
			case tc.planted == (bugs.Set{}) && wentBack:
				t.Fatalf("told %q, then the session shows %d %q: an answer lost", told, resp.StatusCode, now.Step)
			case tc.planted != (bugs.Set{}) && !wentBack:
				t.Fatalf("planted AnswerAnyEpoch: told %q and the session still shows it; the check found nothing", told)
			}
			if tc.planted == (bugs.Set{}) && told == before {
				t.Fatalf("the interaction was never applied: still on %q", before)
			}
		})
	}
}

// A first interaction without a cookie, retried by the gateway with the
// same request id, finds the session its first attempt created: one
// session, not two (defect 12).
func TestRetriedFirstInteractionFindsItsSession(t *testing.T) {
	srv, a := setup(t)
	post := func() (*http.Response, page) {
		c := newClient(t, a.URL) // no cookie
		form := modeltest.Answers("applicant", 1, 0)
		form.Set("_seq", "0")
		req, _ := http.NewRequest("POST", a.URL+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(node.HeaderRequest, "request-1")
		return c.do(req)
	}
	r1, p1 := post()
	r2, p2 := post()
	if r1.StatusCode != http.StatusOK || r2.StatusCode != http.StatusOK {
		t.Fatalf("first interaction and its retry: %d, %d", r1.StatusCode, r2.StatusCode)
	}
	if p1.Session != p2.Session {
		t.Fatalf("a retry started a second session: %s, %s", p1.Session, p2.Session)
	}
	if !p2.Stale {
		t.Errorf("the retry was applied again: %+v", p2)
	}
	if n := len(snapshotsOf(t, srv, p1.Session)); n != 1 {
		t.Errorf("session %s: %d snapshots, want 1", p1.Session, n)
	}
	var cookie string
	for _, c := range r2.Cookies() {
		cookie = c.Value
	}
	if cookie != string(p1.Session) {
		t.Errorf("the retry's cookie %q, want the session %s", cookie, p1.Session)
	}
}

// A node that is no longer the primary forgets what its publisher knew of
// every session (defect 10).
func TestDemotionForgetsTrackedSessions(t *testing.T) {
	srv, a := setup(t)
	b := start(t, srv, "b", node.RoleBackup)
	for range 3 {
		c := newClient(t, a.URL)
		c.get()
		c.answer(1, 0)
	}
	if n := node.TrackedSessions(a.Node); n != 3 {
		t.Fatalf("primary tracks %d sessions, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Member(a.Node).Release(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool { st, ok := b.Status(); return ok && st.Role == "primary" })
	brokertest.WaitFor(t, 10*time.Second, "a to forget its sessions", func() bool {
		return node.TrackedSessions(a.Node) == 0
	})
}
