package node_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"understudy/broker/brokertest"
	"understudy/model/modeltest"
	"understudy/node"
)

// A primary at its bound of requests in flight turns the next one away
// with 503 busy (Retry-After, the reason the gateway retries on), before
// applying anything; the one in flight finishes, and the turned-away
// request succeeds when sent again.
func TestBusyPrimaryTurnsAwayWithoutApplying(t *testing.T) {
	srv := brokertest.Start(t)
	var armed atomic.Bool
	hold, release := make(chan struct{}), make(chan struct{})
	a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) {
		c.MaxInFlight, c.AdmissionWait = 1, 20*time.Millisecond
		c.Fault = func(point string) {
			if point == "before-publish" && armed.CompareAndSwap(true, false) {
				close(hold)
				<-release
			}
		}
	})
	first, second := newClient(t, a.URL), newClient(t, a.URL)
	first.get()
	second.get()
	seq, csrf := second.page.Seq, second.page.CSRF
	vals := modeltest.Answers(second.page.Step, 1, 0)

	armed.Store(true)
	done := make(chan int, 1)
	go func() {
		resp, _ := first.postAt(first.page.Seq, first.page.CSRF, modeltest.Answers(first.page.Step, 1, 0))
		done <- resp.StatusCode
	}()
	<-hold // the first holds the only place
	resp, p := second.postAt(seq, csrf, vals)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(node.HeaderUnavailable) != node.UnavailableBusy || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the bound: %d %q Retry-After %q %+v, want 503 busy with Retry-After", resp.StatusCode,
			resp.Header.Get(node.HeaderUnavailable), resp.Header.Get("Retry-After"), p)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the request in flight: %d", code)
	}
	// Nothing was applied: the same answer again is applied once, now.
	resp, p = second.postAt(seq, csrf, vals)
	if resp.StatusCode != http.StatusOK || p.Seq != seq+1 || p.Stale {
		t.Fatalf("sent again: %d seq %d stale %v, want 200 at seq %d, not stale", resp.StatusCode, p.Seq, p.Stale, seq+1)
	}
}
