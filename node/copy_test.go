package node_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/internal/bugs"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/snapshot"
)

// streamConsumers returns how many consumers the session stream has.
func streamConsumers(t *testing.T, srv *brokertest.Server) int {
	t.Helper()
	stream, err := srv.JetStream(t).Stream(context.Background(), broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Consumers
}

func copyIs(r *running, want string) func() bool {
	return func() bool { st, ok := r.Status(); return ok && st.Copy == want }
}

// TestPrimaryCopyFollowsItsRole: a primary does not consume its own
// stream (its copy is paused, its consumer gone from the server) and its
// publisher keeps the copy the truth of what it stores; demoted, it
// consumes again and holds what the new primary writes; promoted again,
// it serves every session.
func TestPrimaryCopyFollowsItsRole(t *testing.T) {
	srv, a := setup(t)
	b := start(t, srv, "b", node.RoleBackup)
	brokertest.WaitFor(t, 10*time.Second, "a's copy to pause", copyIs(a, "paused"))
	brokertest.WaitFor(t, 10*time.Second, "one consumer: b's", func() bool { return streamConsumers(t, srv) == 1 })
	if st, _ := b.Status(); st.Copy != "consuming" {
		t.Fatalf("b's copy: %q, want consuming", st.Copy)
	}

	c1, c2 := newClient(t, a.URL), newClient(t, a.URL)
	for _, c := range []*client{c1, c2} {
		c.get()
		c.answer(1, 0)
	}
	if st, _ := a.Status(); st.Held != 2 {
		t.Fatalf("a's paused copy holds %d sessions, want the 2 it stored", st.Held)
	}

	// a hands over to b and consumes again; b's writes reach its copy.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Member(a.Node).Release(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool { st, ok := b.Status(); return ok && st.Role == "primary" && st.Ready })
	brokertest.WaitFor(t, 10*time.Second, "a's copy to consume again", copyIs(a, "consuming"))
	brokertest.WaitFor(t, 10*time.Second, "b's copy to pause", copyIs(b, "paused"))
	c3 := newClient(t, b.URL)
	c3.get()
	c3.answer(1, 0)
	c1.base = b.URL
	c1.answer(1, 0)
	brokertest.WaitFor(t, 10*time.Second, "a to hold b's new session", func() bool { st, ok := a.Status(); return ok && st.Held == 3 })

	// b hands back: a serves all three where b left them.
	if err := node.Member(b.Node).Release(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "a to serve", func() bool { st, ok := a.Status(); return ok && st.Role == "primary" && st.Ready })
	for _, c := range []*client{c1, c2, c3} {
		c.base = a.URL
		seq := c.page.Seq
		if resp, p := c.get(); resp.StatusCode != http.StatusOK || p.Seq != seq {
			t.Fatalf("session %s on a again: %d seq %d, want 200 at seq %d", c.page.Session, resp.StatusCode, p.Seq, seq)
		}
		c.answer(1, 0)
	}
}

// TestPausedPrimaryFindsASessionInTheStream: a session that reaches the
// stream from elsewhere while the primary's copy is paused (replay import)
// is served when its client comes, read from the stream: the paused copy
// does not hold it, and that does not make it absent. With the planted
// PausedCopyNoOwn the client is given a new session instead.
func TestPausedPrimaryFindsASessionInTheStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planted bugs.Set
	}{
		{"fixed", bugs.Set{}},
		{"planted PausedCopyNoOwn", bugs.Set{PausedCopyNoOwn: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := brokertest.Start(t)
			a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) { c.Bugs = tc.planted })
			brokertest.WaitFor(t, 10*time.Second, "a's copy to pause", copyIs(a, "paused"))
			id := modeltest.SessionID(77)
			run, _, err := modeltest.Drive(context.Background(), modeltest.Engine(), id, 1, "vehicle")
			if err != nil {
				t.Fatal(err)
			}
			s := run.Session()
			data, err := cbor.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			publishRaw(t, srv.JetStream(t), snapshot.Meta{Session: id, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion}, data)

			c := newClient(t, a.URL)
			u, _ := http.NewRequest("GET", a.URL+"/", nil)
			c.http.Jar.SetCookies(u.URL, []*http.Cookie{{Name: node.DefaultCookie, Value: string(id)}})
			resp, p := c.get()
			found := resp.StatusCode == http.StatusOK && p.Session == id && p.Step == "vehicle" && p.Seq == s.Seq
			switch {
			case tc.planted == bugs.Set{} && !found:
				t.Fatalf("a session only the stream holds: %d %+v", resp.StatusCode, p.Page)
			case tc.planted != bugs.Set{} && found:
				t.Fatal("planted PausedCopyNoOwn: the session was found all the same")
			}
		})
	}
}

// TestUnreadableStreamIsRetried: a session the node must read from the
// stream (here: one a client holds that its paused copy does not), while
// the stream cannot be read, gets 503 broker, which the gateway sends
// again, not a 500: nothing was applied, and the read may succeed later.
func TestUnreadableStreamIsRetried(t *testing.T) {
	srv, a := setup(t)
	brokertest.WaitFor(t, 10*time.Second, "a's copy to pause", copyIs(a, "paused"))
	js := srv.JetStream(t)
	if err := js.DeleteStream(context.Background(), broker.Subjects{}.StreamName()); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, a.URL)
	u, _ := http.NewRequest("GET", a.URL+"/", nil)
	c.http.Jar.SetCookies(u.URL, []*http.Cookie{{Name: node.DefaultCookie, Value: string(modeltest.SessionID(78))}})
	resp, p := c.get()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(node.HeaderUnavailable) != node.UnavailableBroker {
		t.Fatalf("GET while the stream cannot be read: %d %q %+v, want 503 broker", resp.StatusCode, resp.Header.Get(node.HeaderUnavailable), p)
	}
	resp, p = c.postAt(3, "x", modeltest.Answers("vehicle", 1, 0))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(node.HeaderUnavailable) != node.UnavailableBroker {
		t.Fatalf("POST while the stream cannot be read: %d %q %+v, want 503 broker", resp.StatusCode, resp.Header.Get(node.HeaderUnavailable), p)
	}
}
