package node_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/demo"
	"understudy/model"
	"understudy/node"
	"understudy/node/nodetest"
	"understudy/snapshot"
)

// TestMixedBuilds: a primary of the demo's second release (both versions
// of the quote and the migrations between them) publishes only what every
// live member can rebuild. With a member of the first release in the
// group it starts sessions on version 1 and keeps them there; once that
// member is gone a session moves to version 2 at its next interaction;
// when a member of the first release joins again it moves back to version
// 1, and that member, promoted, serves it to the end.
func TestMixedBuilds(t *testing.T) {
	srv := brokertest.Start(t)
	cfg := func(name string, role node.Role) node.Config {
		c := nodetest.Config(t, srv.ClientConfig(t), name, role)
		c.App = demo.AppName
		// Nothing here fails over: a lease that a loaded machine cannot
		// lapse, so that no answer is refused for want of one.
		c.Group.Lease = 3 * time.Second
		return c
	}
	old := nodetest.Start(t, cfg("old", node.RoleBackup), demo.Registry(), demo.Resolver())
	a := nodetest.Start(t, cfg("a", node.RolePrimary), demo.RegistryV2(), demo.Resolver())
	members(t, a, "old", true)

	c := newClient(t, a.URL)
	if resp, p := c.get(); resp.StatusCode != http.StatusOK || p.Version != demo.AppVersion {
		t.Fatalf("first page with a member of release 1: %d version %d", resp.StatusCode, p.Version)
	}
	s := &shopper{c: c}
	s.answer(t, demo.AppVersion)
	s.answer(t, demo.AppVersion)
	id := model.SessionID(c.page.Session)
	if v := stored(t, srv, id).Version; v != demo.AppVersion {
		t.Fatalf("published at version %d while a member of release 1 is live", v)
	}

	old.Stop()
	members(t, a, "old", false)
	s.answer(t, demo.AppVersion2)
	st := stored(t, srv, id)
	if st.Version != demo.AppVersion2 {
		t.Fatalf("published at version %d with every member on release 2", st.Version)
	}
	if a := key(s.values(), "applicant"); key(a, "first") != "Ada" || key(a, "last") != "Lovelace" || key(a, "name") != nil {
		t.Fatalf("migrated applicant %v", a)
	}

	old2 := nodetest.Start(t, cfg("old2", node.RoleBackup), demo.Registry(), demo.Resolver())
	members(t, a, "old2", true)
	s.answer(t, demo.AppVersion)
	if v := stored(t, srv, id).Version; v != demo.AppVersion {
		t.Fatalf("published at version %d while a member of release 1 is live again", v)
	}
	if name := key(s.values(), "applicant", "name"); name != "Ada Lovelace" {
		t.Fatalf("name back at version 1: %v", name)
	}

	// The member of release 1 takes over and serves the session to the end.
	a.Stop()
	brokertest.WaitFor(t, 10*time.Second, "old2 to be primary", func() bool {
		st, ok := old2.Status()
		return ok && st.Role == "primary"
	})
	c.base = old2.URL
	if resp, p := c.get(); resp.StatusCode != http.StatusOK || p.Version != demo.AppVersion {
		t.Fatalf("old2 serving the session: %d version %d %s", resp.StatusCode, p.Version, p.Error)
	}
	for !c.page.Finished {
		s.answer(t, demo.AppVersion)
	}
}

// shopper answers the demo's pages for customer 0 with one driver.
type shopper struct {
	c       *client
	answers int
}

// answer submits the current page and checks the next one is of version.
func (s *shopper) answer(t *testing.T, version int) {
	t.Helper()
	vals := demo.Answers(s.c.page.Step, 0)
	resp, p := s.c.post(vals)
	if resp.StatusCode != http.StatusOK || p.Stale {
		t.Fatalf("answering %s: %d %s", s.c.page.Step, resp.StatusCode, p.Error)
	}
	if p.Version != version {
		t.Fatalf("after answering %s: page of version %d, want %d", s.c.page.Step, p.Version, version)
	}
	s.answers++
}

// values returns the session's values from the current page's JSON.
func (s *shopper) values() map[string]any {
	var v map[string]any
	json.Unmarshal(s.c.page.Vals, &v)
	return v
}

func key(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

// members waits until node r hears member name as live (or no longer).
func members(t *testing.T, r *nodetest.Running, name string, live bool) {
	t.Helper()
	brokertest.WaitFor(t, 10*time.Second, "members heard by the primary", func() bool {
		st, ok := r.Status()
		if !ok || st.MemberApps == nil {
			return false
		}
		_, heard := st.MemberApps[name]
		return heard == live
	})
}

// stored reads a session's newest snapshot from the stream.
func stored(t *testing.T, srv *brokertest.Server, id model.SessionID) *model.Session {
	t.Helper()
	js := srv.JetStream(t)
	stream, err := js.Stream(t.Context(), broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	st, err := snapshot.Latest(t.Context(), stream, broker.Subjects{}, nil, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cbor.Decode(st.Data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
