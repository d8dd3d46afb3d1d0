//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/cbor"
	"understudy/cmd/replay/replaycmd"
	"understudy/demo"
	"understudy/internal/deploy"
	"understudy/model"
)

// TestRollingUpgrade deploys the demo's second release (version 2 of the
// quote and the migrations between the two) while 50 people are in the
// middle of their quotes on the first, one node at a time: the backup is
// restarted on the new release, the primary hands over to it (SIGTERM),
// the old primary comes back on the new release, and the group is handed
// back; then a node of the first release joins again. Every session
// finishes with every answer applied exactly once and no error seen, and
// each answer's page (and snapshot) is on the version the group allows at
// that moment: 1 while the primary runs the first release, 2 once every
// member runs the second, 1 again once a member of the first is back. At
// the end that member takes over and shows every session.
//
// Before the upgrade, the preflight (replay check) over the live sessions
// says every one of them would migrate with the second release, and that
// exactly they would fail with a build that dropped version 1 without a
// migration.
//
// The shoppers move in step with the upgrade: the k-th answer of every
// session is sent in phase k, while that phase's change is under way.
func TestRollingUpgrade(t *testing.T) {
	l := deployment(t)
	ctx := context.Background()
	startNode(t, l, "node-a", "primary", "-demo", "v1")
	startNode(t, l, "node-b", "backup", "-demo", "v1")
	waitOwner(t, l, "node-a")

	var budget atomic.Int32 // answers each shopper may have sent
	budget.Store(2)
	shoppers := make([]*shopper, *sessions)
	done := make([]atomic.Int32, len(shoppers))
	var wg sync.WaitGroup
	for i := range shoppers {
		s := newShopper(3*i+2, l.GatewayURL(0)) // three drivers: ten pages or so
		shoppers[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !s.start() {
				return
			}
			for {
				for int(done[i].Load()) >= int(budget.Load()) {
					time.Sleep(5 * time.Millisecond) // waiting for the next phase
				}
				more := s.step()
				done[i].Store(int32(len(s.history)))
				if !more {
					done[i].Store(1 << 20)
					return
				}
			}
		}()
	}
	// phase lets every shopper send its k-th answer while change runs,
	// and waits until all have.
	phase := func(k int, what string, change func()) {
		t.Helper()
		t0 := time.Now()
		budget.Store(int32(k))
		if change != nil {
			change()
		}
		deadline := time.Now().Add(time.Minute)
		for i := range done {
			for int(done[i].Load()) < k {
				if time.Now().After(deadline) {
					t.Fatalf("phase %d (%s): session %d has sent %d answers", k, what, shoppers[i].id, done[i].Load())
				}
				time.Sleep(5 * time.Millisecond) // polling the shoppers
			}
		}
		t.Logf("phase %d: %s (%v)", k, what, time.Since(t0).Round(time.Millisecond))
	}
	defer budget.Store(1 << 20) // on a failure, let the shoppers run out
	phase(2, fmt.Sprintf("%d sessions mid-flow on release 1", len(shoppers)), nil)

	// The preflight, before anything is deployed.
	var ids []string
	for _, s := range shoppers {
		ids = append(ids, s.page.Session)
	}
	slices.Sort(ids)
	c := preflight(t, l.NATSURL, demo.RegistryV2(), nil)
	if c.Sessions != len(shoppers) || c.Migrate != len(shoppers) || c.Fail != 0 {
		t.Fatalf("preflight of release 2: %+v", c)
	}
	dropped := model.NewRegistry().MustRegister(demo.QuoteV2(), demo.Payment(), demo.Card())
	c = preflight(t, l.NATSURL, dropped, replaycmd.ErrWouldFail)
	var ko []string
	for _, v := range c.Versions {
		ko = append(ko, v.Failed...)
	}
	if slices.Sort(ko); c.Fail != len(shoppers) || !slices.Equal(ko, ids) {
		t.Fatalf("preflight of a build without version 1: %d fail %v, want exactly the %d live sessions", c.Fail, ko, len(ids))
	}
	t.Logf("preflight: release 2 migrates all %d sessions; without version 1 exactly those %d fail", len(ids), c.Fail)

	restart := func(name, release string) {
		if err := l.Nodes[name].Stop(15 * time.Second); err != nil {
			t.Error(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := l.StartNode(sctx, name, "backup", "-demo", release); err != nil {
			t.Error(err)
		}
	}
	phase(3, "node-b restarted on release 2", func() { restart("node-b", "v2") })
	phase(4, "node-a hands over to node-b (SIGTERM), node-a restarted on release 2", func() {
		restart("node-a", "v2")
		waitOwner(t, l, "node-b")
	})
	hears(t, l, "node-b", "node-a", "car-insurance@2")
	phase(5, "every member on release 2", nil)
	phase(6, "node-b hands over to node-a (SIGTERM) and comes back", func() {
		restart("node-b", "v2")
		waitOwner(t, l, "node-a")
	})
	startNode(t, l, "node-c", "backup", "-demo", "v1")
	hears(t, l, "node-a", "node-c", "car-insurance@1")
	phase(7, "node-c of release 1 joined", nil)
	budget.Store(1 << 20)
	wg.Wait()
	verify(t, shoppers)

	// Each answer's page was on the version the group allowed then.
	allowed := func(k int) []int { // the k-th answer (1-based)
		switch {
		case k <= 3:
			return []int{1} // node-a of release 1 primary
		case k == 4:
			return []int{1, 2} // node-b primary, node-a of release 1 live until its heartbeats are stale
		case k <= 6:
			return []int{2}
		}
		return []int{1} // node-c of release 1 live
	}
	migrated := 0
	for _, s := range shoppers {
		for k, h := range s.history {
			if !slices.Contains(allowed(k+1), h.Version) {
				t.Errorf("session %s: answer %d (%s) led to a page of version %d, want %v", s.page.Session, k+1, h.Step, h.Version, allowed(k+1))
			}
			if k > 0 && h.Version != s.history[k-1].Version {
				migrated++
			}
		}
	}
	t.Logf("%d migrations seen by the clients", migrated)

	// The stream holds what the pages showed: the session's snapshot at
	// each interaction is on the version of the page that followed it.
	checkStream(t, l.NATSURL, shoppers)

	// The member of release 1 takes over and shows every session.
	if err := l.Nodes["node-b"].Stop(15 * time.Second); err != nil {
		t.Error(err)
	}
	if err := l.Nodes["node-a"].Stop(15 * time.Second); err != nil {
		t.Error(err)
	}
	waitOwner(t, l, "node-c")
	for _, s := range shoppers {
		req, _ := http.NewRequest("GET", s.base+"/", nil)
		resp, p, err := s.do(req)
		if err != nil || resp.StatusCode != http.StatusOK || !p.Finished || p.Version != 1 || resp.Header.Get("Understudy-Node") != "node-c" {
			t.Errorf("session %s on node-c: %v %v finished %v version %d", s.page.Session, statusOf(resp), err, p.Finished, p.Version)
		}
	}
}

// checkOut is the part of replay check's -json output the test reads.
type checkOut struct {
	Sessions int `json:"sessions"`
	Migrate  int `json:"migrate"`
	Fail     int `json:"fail"`
	Versions []struct {
		App    string   `json:"app"`
		Failed []string `json:"failed_sessions"`
	} `json:"versions"`
}

// preflight runs replay check built with reg against the deployment's
// NATS, as a team's replay binary would, and wants err from it.
func preflight(t *testing.T, natsURL string, reg *model.Registry, want error) checkOut {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := replaycmd.Main(context.Background(), replaycmd.Config{Registry: reg}, []string{"check", "-json", "-nats", natsURL}, strings.NewReader(""), &stdout, &stderr)
	if !errors.Is(err, want) && !(want == nil && err == nil) {
		t.Fatalf("replay check: %v, want %v\n%s%s", err, want, stdout.String(), stderr.String())
	}
	var c checkOut
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		t.Fatalf("replay check -json: %v\n%s", err, stdout.String())
	}
	return c
}

// hears waits until node's status says member is live and announces app.
func hears(t *testing.T, l *deploy.Local, node, member, app string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			MemberApps map[string][]string `json:"member_apps"`
		}
		resp, err := http.Get(l.NodeURL(node) + "/understudy/status")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if slices.Contains(st.MemberApps[member], app) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not hear %s announce %s: %v", node, member, app, st.MemberApps)
		}
		time.Sleep(20 * time.Millisecond) // polling the node's status
	}
}

// checkStream reads every snapshot of each session from the stream and
// compares its version with the page its interaction led to.
func checkStream(t *testing.T, natsURL string, shoppers []*shopper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := broker.Connect(ctx, broker.Config{URL: natsURL, Name: "e2e-upgrade", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	reg := demo.RegistryV2()
	eng := model.NewEngine(reg, demo.Resolver())
	for _, s := range shoppers {
		subject, _ := broker.Subjects{}.SessionSubject(s.page.Session)
		versions := map[uint64]int{} // by interaction seq
		for seq := uint64(1); ; {
			raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seq = raw.Sequence + 1
			if len(raw.Data) == 0 {
				continue // a tombstone
			}
			snap, err := cbor.Decode(raw.Data)
			if err != nil {
				t.Fatalf("session %s stream seq %d: %v", s.page.Session, raw.Sequence, err)
			}
			if _, err := eng.Materialize(ctx, snap); err != nil {
				t.Errorf("session %s seq %d does not materialize: %v", s.page.Session, snap.Seq, err)
			}
			versions[snap.Seq] = snap.Version
		}
		for k, h := range s.history {
			if v, ok := versions[uint64(k+1)]; ok && v != h.Version {
				t.Errorf("session %s seq %d: snapshot of version %d, page of version %d", s.page.Session, k+1, v, h.Version)
			}
		}
		if len(versions) < len(s.history)-1 {
			t.Errorf("session %s: %d snapshots kept for %d answers", s.page.Session, len(versions), len(s.history))
		}
	}
}
