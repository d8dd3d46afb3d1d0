package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/internal/syncbuf"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/snapshot"
)

// messages returns how many messages the stream holds of session id, and
// how many of them are tombstones (which carry no data).
func messages(t *testing.T, srv *brokertest.Server, id model.SessionID) (n, tombstones int) {
	t.Helper()
	js := srv.JetStream(t)
	stream, err := js.Stream(context.Background(), broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := broker.Subjects{}.SessionSubject(string(id))
	for seq := uint64(1); ; {
		raw, err := stream.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, tombstones
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if raw.Header.Get(snapshot.HeaderTombstone) == "1" {
			tombstones++
		}
		seq = raw.Sequence + 1
	}
}

// TestEraseLiveSession: an operator erases a session in the middle of its
// application. Its primary drops it at once (its user gets the "session
// ended" page), the backup drops it, the stream keeps nothing of it but a
// tombstone and, once the retention has passed, nothing at all; the other
// sessions go on, before and after a failover.
func TestEraseLiveSession(t *testing.T) {
	srv := brokertest.Start(t)
	a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) { c.Retention = 500 * time.Millisecond })
	b := start(t, srv, "b", node.RoleBackup)
	erased, other := newClient(t, a.URL), newClient(t, a.URL)
	for _, c := range []*client{erased, other} {
		c.get()
		c.answer(1, 0)
	}
	erased.answer(1, 0)
	id := erased.page.Session
	brokertest.WaitFor(t, 10*time.Second, "b to hold both sessions", func() bool {
		st, ok := b.Status()
		return ok && st.Held == 2
	})

	nc := srv.Connect(t)
	data, _ := json.Marshal(node.EraseRequest{Session: string(id)})
	msg, err := nc.Request(broker.Subjects{}.EraseSubject(), data, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep node.EraseReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error != "" || !rep.Live || rep.Node != "a" || rep.Tombstone == 0 {
		t.Fatalf("erase reply %+v, %v", rep, err)
	}
	if n, tombs := messages(t, srv, id); n != 1 || tombs != 1 {
		// The retention may already have purged the tombstone too.
		if n != 0 {
			t.Fatalf("the stream holds %d messages of the erased session (%d tombstones), want its tombstone only", n, tombs)
		}
	}
	// Its user gets the "session ended" page, whatever they do.
	if resp, p := erased.postAt(erased.page.Seq, erased.page.CSRF, modeltest.Answers("drivers/driver/who", 1, 0)); resp.StatusCode != http.StatusGone {
		t.Fatalf("erased session, post: %d %+v", resp.StatusCode, p)
	}
	req, _ := http.NewRequest("GET", a.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: node.DefaultCookie, Value: string(id)})
	req.Header.Set("Accept", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("erased session, get: %v %v", resp, err)
	}
	// A first interaction under its id does not bring it back either.
	if resp, _ := (&client{t: t, base: a.URL, http: http.DefaultClient}).do(func() *http.Request {
		r, _ := http.NewRequest("POST", a.URL+"/", strings.NewReader("_seq=0&"+modeltest.Answers("applicant", 1, 0).Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(&http.Cookie{Name: node.DefaultCookie, Value: string(id)})
		return r
	}()); resp.StatusCode != http.StatusGone {
		t.Fatalf("a new session under the erased id: %d", resp.StatusCode)
	}
	brokertest.WaitFor(t, 10*time.Second, "b to drop the erased session", func() bool {
		st, ok := b.Status()
		return ok && st.Held == 1
	})
	brokertest.WaitFor(t, 10*time.Second, "the retention to purge the tombstone", func() bool {
		n, _ := messages(t, srv, id)
		return n == 0
	})
	other.answer(1, 0)

	a.Stop()
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool {
		st, ok := b.Status()
		return ok && st.Role == "primary" && st.Ready
	})
	erased.base, other.base = b.URL, b.URL
	if resp, _ := erased.postAt(erased.page.Seq, erased.page.CSRF, modeltest.Answers("drivers/driver/who", 1, 0)); resp.StatusCode != http.StatusGone {
		t.Fatalf("erased session on b: %d", resp.StatusCode)
	}
	other.answer(1, 0)
	if n, _ := messages(t, srv, id); n != 0 {
		t.Fatalf("the stream holds %d messages of the erased session", n)
	}
}

// TestRetentionPurgesEndedSessions: an ended session's history stays for
// the retention, then its primary purges it; a new primary purges what
// the old one ended.
func TestRetentionPurgesEndedSessions(t *testing.T) {
	srv := brokertest.Start(t)
	short := func(c *node.Config) { c.Idle, c.Retention = 300*time.Millisecond, 600*time.Millisecond }
	a := start(t, srv, "a", node.RolePrimary, short)
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0)
	c.answer(1, 0)
	id := c.page.Session
	brokertest.WaitFor(t, 10*time.Second, "the idle session to end", func() bool {
		_, tombs := messages(t, srv, id)
		return tombs == 1
	})
	if n, _ := messages(t, srv, id); n != 3 {
		t.Fatalf("right after the tombstone: %d messages, want 3 (kept for the retention)", n)
	}
	brokertest.WaitFor(t, 10*time.Second, "the retention to purge it", func() bool {
		n, _ := messages(t, srv, id)
		return n == 0
	})

	// A primary that keeps history for ever ends a session; the primary
	// that replaces it purges it: a backup that took the tombstone into
	// its copy (started after it was written: its catch-up brings it), or
	// a cold standby, which scans the stream once promoted.
	a.Stop()
	for _, cold := range []bool{false, true} {
		t.Run(map[bool]string{false: "backup", true: "cold"}[cold], func(t *testing.T) {
			forever := start(t, srv, "f", node.RolePrimary, func(c *node.Config) { c.Idle, c.Retention = 300*time.Millisecond, -1 })
			c := newClient(t, forever.URL)
			c.get()
			c.answer(1, 0)
			id := c.page.Session
			brokertest.WaitFor(t, 10*time.Second, "the idle session to end", func() bool {
				_, tombs := messages(t, srv, id)
				return tombs == 1
			})
			b := start(t, srv, "b", node.RoleBackup, short, func(c *node.Config) { c.Cold = cold })
			forever.Stop()
			brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool {
				st, ok := b.Status()
				return ok && st.Role == "primary" && st.Ready
			})
			brokertest.WaitFor(t, 10*time.Second, "the new primary to purge it", func() bool {
				n, _ := messages(t, srv, id)
				return n == 0
			})
			b.Stop()
		})
	}
}

// TestSealedFailover: a node pair sealing snapshots fails over and the
// session goes on; what the stream holds is sealed; a backup without the
// key that takes over quarantines the session with a clear reason, and its
// user gets the page that says so.
func TestSealedFailover(t *testing.T) {
	srv := brokertest.Start(t)
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("old "+strings.Repeat("11", 32)+"\nnew "+strings.Repeat("22", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := snapshot.LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed := func(c *node.Config) { c.Sealer = keys }
	a := start(t, srv, "a", node.RolePrimary, sealed)
	b := start(t, srv, "b", node.RoleBackup, sealed)
	c := newClient(t, a.URL)
	c.get()
	driver := 0
	for c.page.Step != "payment/method" {
		if c.page.Step == "drivers/driver/more" {
			driver++
		}
		c.answer(2, driver)
	}
	js := srv.JetStream(t)
	stream, _ := js.Stream(context.Background(), broker.Subjects{}.StreamName())
	subject, _ := broker.Subjects{}.SessionSubject(string(c.page.Session))
	raw, err := stream.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get(snapshot.HeaderKey) != "new" || strings.Contains(string(raw.Data), "Ada") {
		t.Fatalf("stored: key %q, plaintext visible: %v", raw.Header.Get(snapshot.HeaderKey), strings.Contains(string(raw.Data), "Ada"))
	}
	if _, err := snapshot.FromRaw(broker.Subjects{}, nil, raw); !errors.Is(err, snapshot.ErrSealed) {
		t.Fatalf("read without the key: %v", err)
	}

	a.Stop()
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool {
		st, ok := b.Status()
		return ok && st.Role == "primary" && st.Ready
	})
	c.base = b.URL
	if resp, p := c.get(); resp.StatusCode != http.StatusOK || p.Step != "payment/method" {
		t.Fatalf("on b: %d %+v", resp.StatusCode, p.Page)
	}
	c.answer(2, driver)

	logs := &syncbuf.Buffer{}
	nokey := start(t, srv, "c", node.RoleBackup, func(cfg *node.Config) {
		cfg.Logger = brokertestLogger(logs)
	})
	b.Stop()
	brokertest.WaitFor(t, 10*time.Second, "c to serve", func() bool {
		st, ok := nokey.Status()
		return ok && st.Role == "primary" && st.Ready
	})
	c.base = nokey.URL
	resp, p := c.get()
	if resp.StatusCode != http.StatusInternalServerError || p.Reason != node.ReasonQuarantined {
		t.Fatalf("on a node without the key: %d %+v", resp.StatusCode, p)
	}
	if text := logs.String(); !strings.Contains(text, "sealed with key new") || !strings.Contains(text, string(c.page.Session)) {
		t.Fatalf("the logs do not say why the session is quarantined:\n%s", text)
	}
}

// TestFailoverKeepsAFinishedSessionsLinger: a session that finished on the
// old primary ends after its linger on the new one. (Adopted, it counted
// as unfinished and idle only from the failover: with failovers more
// frequent than the idle time, finished sessions lived for ever.)
func TestFailoverKeepsAFinishedSessionsLinger(t *testing.T) {
	srv := brokertest.Start(t)
	long := func(c *node.Config) { c.Idle, c.FinishedLinger = time.Hour, time.Hour }
	a := start(t, srv, "a", node.RolePrimary, long)
	b := start(t, srv, "b", node.RoleBackup, func(c *node.Config) { c.Idle, c.FinishedLinger = time.Hour, 300*time.Millisecond })
	c := newClient(t, a.URL)
	c.get()
	for driver := 0; !c.page.Finished; {
		if c.page.Step == "drivers/driver/more" {
			driver++
		}
		c.answer(1, driver)
	}
	id := c.page.Session
	a.Stop() // hands over: b adopts the finished session
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool { st, ok := b.Status(); return ok && st.Role == "primary" && st.Ready })
	brokertest.WaitFor(t, 10*time.Second, "b to end the finished session after its linger", func() bool {
		_, tombs := messages(t, srv, id)
		return tombs == 1
	})
}
