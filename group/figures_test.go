package group

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	"understudy/broker/brokertest"
)

var figures = flag.Int("figures", 0, "run TestPromotionFigures with this many promotions per path")

// TestPromotionFigures measures promotions: the time from the failover
// signal to the winner's reply, and its parts (lease wait or fast-path
// ping, drain, claim), for the crash fast path and for the lease path. It
// prints figures and asserts nothing about them.
//
//	go test ./group -run PromotionFigures -figures 20 -v
func TestPromotionFigures(t *testing.T) {
	if *figures == 0 {
		t.Skip("figures only: -figures N")
	}
	for _, reason := range []string{ReasonUnreachable, ReasonLease} {
		c := newCluster(t, brokertest.Start(t))
		cur := c.member("p0")
		primary(t, cur)
		var took, wait, drain, claim []time.Duration
		for i := range *figures {
			next := c.member(fmt.Sprintf("p%d", i+1))
			crash(cur)
			rep, err := c.signal(cur.cfg.Node, reason)
			if err != nil || !rep.Promoted || rep.Node != next.cfg.Node {
				t.Fatalf("promotion %d: %+v %v", i, rep, err)
			}
			took, wait, drain, claim = append(took, rep.Took), append(wait, rep.Wait), append(drain, rep.Drain), append(claim, rep.Claim)
			cur = next
		}
		t.Logf("%s path, %d promotions (lease %v): signal to reply %s; wait %s; drain %s; claim %s",
			reason, len(took), c.lease, stats(took), stats(wait), stats(drain), stats(claim))
	}
}

func stats(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	return fmt.Sprintf("median %v max %v", s[len(s)/2].Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}
