//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/demo"
	"understudy/snapshot"
)

// TestSplitBrain pauses the primary past its lease while requests sent
// straight to it (not through the gateway) wait on it, lets the backup take
// over, then resumes it and sends it more. The old primary answers none of
// them successfully; none of its snapshots after its lease lapsed is
// accepted by any reader; none of its writes shows up on the new primary.
func TestSplitBrain(t *testing.T) {
	l := local(t, "node-a", "node-b")
	// Sessions part-way through, held by node-a.
	var shoppers []*shopper
	for i := range 6 {
		s := newShopper(500+i, l.GatewayURL(0))
		s.think = 0
		if !s.start() {
			t.Fatal(s.errs)
		}
		for len(s.history) < 2 {
			s.step()
		}
		if len(s.errs) > 0 {
			t.Fatal(s.errs)
		}
		shoppers = append(shoppers, s)
	}
	const forged = "SPL1TBR" // an answer only ever sent to the old primary
	direct := func(s *shopper) int {
		vals := demo.Answers(s.page.Step, s.id)
		vals.Set("registration", forged)
		form := url.Values{}
		for k, v := range vals {
			form[k] = v
		}
		form.Set("_seq", strconv.FormatUint(s.page.Seq, 10))
		form.Set("_csrf", s.page.CSRF)
		req, _ := http.NewRequest("POST", l.NodeURL("node-a")+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := s.http.Do(req) // the shopper's cookie jar holds the session
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	l.Nodes["node-a"].Pause()
	var wg sync.WaitGroup
	codes := make([]int, len(shoppers))
	for i, s := range shoppers {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = direct(s) }() // they wait in node-a's backlog
	}
	st := waitOwner(t, l, "node-b") // the gateway notices the silence; node-b takes over
	time.Sleep(200 * time.Millisecond)
	l.Nodes["node-a"].Resume()
	wg.Wait()
	for i, s := range shoppers {
		if codes[i] == http.StatusOK {
			t.Errorf("session %s: the old primary answered a request queued while it was paused", s.page.Session)
		}
		if c := direct(s); c == http.StatusOK {
			t.Errorf("session %s: the resumed old primary answered %d", s.page.Session, c)
		}
	}
	// The sessions carry on through the gateway, on node-b.
	for _, s := range shoppers {
		for s.step() {
		}
		if len(s.errs) == 0 {
			s.check()
		}
		for _, e := range s.errs {
			t.Error(e)
		}
		data, _ := json.Marshal(s.page.Values)
		if strings.Contains(string(data), forged) {
			t.Errorf("session %s: the old primary's write shows up on the new primary", s.page.Session)
		}
	}
	// No snapshot node-a wrote after node-b's claim is valid for a reader.
	nc, err := nats.Connect(l.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	entry, err := js.KeyValue(context.Background(), broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := entry.Get(context.Background(), "main")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Claims snapshot.Claims `json:"claims"`
	}
	json.Unmarshal(kv.Value(), &g)
	cons, err := js.OrderedConsumer(context.Background(), broker.Subjects{}.StreamName(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	after, fencedSeen := 0, 0
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break
		}
		md, _ := msg.Metadata()
		h := msg.Headers()
		epoch, _ := strconv.ParseUint(h.Get(snapshot.HeaderEpoch), 10, 64)
		if h.Get(snapshot.HeaderNode) == "node-a" && epoch < st.Epoch && md.Sequence.Stream > g.Claims[len(g.Claims)-1].Fence {
			after++
			if g.Claims.Fenced(epoch, md.Sequence.Stream) {
				fencedSeen++
			}
		}
		if md.NumPending == 0 {
			break
		}
	}
	if after != fencedSeen {
		t.Errorf("%d snapshots by node-a after the claim, %d of them fenced", after, fencedSeen)
	}
	t.Logf("queued requests to the old primary answered %v; %d snapshots by it after the claim (all fenced)", codes, after)
}
