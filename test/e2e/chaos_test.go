//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"understudy/demo"
	"understudy/internal/deploy"
	"understudy/wire"
)

var (
	chaosDuration = flag.Duration("chaos.duration", 20*time.Second, "how long TestChaos injures the system")
	chaosSessions = flag.Int("chaos.sessions", 16, "concurrent clients in TestChaos")
	chaosEvery    = flag.Duration("chaos.every", 2*time.Second, "mean time between injuries in TestChaos")
	chaosCluster  = flag.Bool("chaos.cluster", false, "run TestChaos on a 3-server NATS cluster (and lose servers)")
	chaosLoad     = flag.Int("chaos.load", 32, "clients at no think time beside the thinking ones, each starting without a cookie")
)

// submit is one attempt at one interaction, as the history records it.
type submit struct {
	Session string
	Seq     uint64 // the page's sequence the answer was sent from
	Read    bool   // a final read of the session, not a submission
}

// outcome is what the attempt's client saw.
type outcome struct {
	Known bool   // a 200 came back; otherwise the outcome is unknown
	Seq   uint64 // the sequence of the page that came back
}

// sessionModel is the model every session's history must be linearizable
// against: the session is a counter of interactions applied. A submission
// made at the current count is applied exactly once (the answer comes back
// at count+1); one made at an older count is not applied (the current page
// comes back); an attempt whose outcome the client never learned may or may
// not have been applied, but at most once; a read returns the count.
var sessionModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range history {
			s := op.Input.(submit).Session
			by[s] = append(by[s], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{uint64(0)} },
	Step: func(state, input, output any) []any {
		n, in, out := state.(uint64), input.(submit), output.(outcome)
		switch {
		case in.Read:
			if out.Known && out.Seq == n {
				return []any{n}
			}
		case !out.Known:
			if in.Seq == n {
				return []any{n, n + 1}
			}
			return []any{n}
		case in.Seq == n && out.Seq == n+1:
			return []any{n + 1}
		case in.Seq < n && out.Seq == n:
			return []any{n}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(submit), output.(outcome)
		if in.Read {
			return fmt.Sprintf("read -> %d", out.Seq)
		}
		if !out.Known {
			return fmt.Sprintf("submit@%d -> ?", in.Seq)
		}
		return fmt.Sprintf("submit@%d -> %d", in.Seq, out.Seq)
	},
}

// history records every attempt of every client, and every answer a
// client saw that was not a 200.
type history struct {
	mu      sync.Mutex
	ops     []porcupine.Operation
	longest time.Duration
	visible map[string]int // "503 broker": how many
	noReply int            // attempts that got no answer at all
}

// saw counts an answer that was not a 200: an error a person would see.
func (h *history) saw(status int, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.visible == nil {
		h.visible = map[string]int{}
	}
	h.visible[strings.TrimSpace(fmt.Sprintf("%d %s", status, reason))]++
}

func (h *history) lostReply() {
	h.mu.Lock()
	h.noReply++
	h.mu.Unlock()
}

func (h *history) visibleErrors() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.visible {
		n += c
	}
	return n
}

func (h *history) add(client int, in submit, call time.Time, out outcome) {
	ret := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call.UnixNano(), Output: out, Return: ret.UnixNano()})
	if d := ret.Sub(call); d > h.longest {
		h.longest = d
	}
}

// chaosClient walks sessions through the demo application, retrying every
// answer until it is acknowledged, and records every attempt.
//
// Every session it starts ends finished (and checked) or failed: it gave
// up, or was answered 410, 500 (a quarantine page among them), a new
// session for a live one, or a page that went back. A session started
// before the end of the run is carried to its end after it. A load client
// (think 0) starts without a cookie: its first interaction is a POST.
func chaosClient(ctx context.Context, id int, base string, load bool, h *history, done *sync.WaitGroup, finished chan<- *shopper) {
	defer done.Done()
	for n := 0; ctx.Err() == nil; n++ {
		s := newShopper(10000*id+n, base)
		s.think = time.Duration(10+rand.IntN(40)) * time.Millisecond
		if load {
			s.think = 0
			s.page = page{Step: demo.StepApplicant} // no GET, no cookie: the first POST starts the session
		} else {
			for !s.start() {
				s.errs = nil
				if ctx.Err() != nil {
					return
				}
				time.Sleep(100 * time.Millisecond) // the gateway itself may be restarting its NATS connection
			}
		}
		s.walk(id, h)
		finished <- s
	}
}

// walk takes the session to its end: finished, or failed.
func (s *shopper) walk(id int, h *history) {
	for !s.page.Finished {
		time.Sleep(s.think)
		vals := s.answers()
		for attempt := 0; ; attempt++ {
			call := time.Now()
			p, status, reason, err := s.attempt(vals)
			in := submit{Session: s.page.Session, Seq: s.page.Seq}
			if err != nil || status != http.StatusOK {
				if s.page.Session != "" {
					h.add(id, in, call, outcome{})
				}
				if err != nil {
					h.lostReply()
				} else {
					h.saw(status, reason)
				}
				if status == http.StatusGone || status == http.StatusInternalServerError {
					s.failed = fmt.Sprintf("answered %d %s at %s seq %d", status, reason, s.page.Step, s.page.Seq)
					s.fail("%s", s.failed)
					return
				}
				if attempt > 100 {
					s.failed = fmt.Sprintf("gave up on %s at seq %d after %d attempts (last: %d %s %v)", s.page.Step, s.page.Seq, attempt+1, status, reason, err)
					s.fail("%s", s.failed)
					return
				}
				time.Sleep(50 * time.Millisecond) // then the same answer again: exactly once makes it safe
				continue
			}
			switch {
			case s.page.Session != "" && p.Session != s.page.Session:
				s.failed = fmt.Sprintf("a new session %s for the live one at %s seq %d", p.Session, s.page.Step, s.page.Seq)
			case p.Seq < s.page.Seq:
				s.failed = fmt.Sprintf("the page went back from seq %d (%s) to seq %d (%s)", s.page.Seq, s.page.Step, p.Seq, p.Step)
			}
			if s.failed != "" {
				h.add(id, in, call, outcome{Known: true, Seq: p.Seq})
				s.fail("%s", s.failed)
				return
			}
			if s.page.Session == "" {
				in.Session = p.Session // the first POST created it
			}
			h.add(id, in, call, outcome{Known: true, Seq: p.Seq})
			if p.Seq == s.page.Seq+1 {
				s.history = append(s.history, sent{Step: s.page.Step, Seq: s.page.Seq, Values: vals, At: call})
				if s.page.Step == demo.StepDriver {
					s.driver++
				}
			}
			s.page = p
			break
		}
	}
	// A final read: the session as the system holds it.
	call := time.Now()
	req, _ := http.NewRequest("GET", s.base+"/", nil)
	resp, p, err := s.do(req)
	switch {
	case err != nil:
		h.lostReply()
	case resp.StatusCode != http.StatusOK:
		h.saw(resp.StatusCode, p.Error)
	case p.Session != s.page.Session:
		s.failed = fmt.Sprintf("the final read shows session %s", p.Session)
		s.fail("%s", s.failed)
	default:
		h.add(id, submit{Session: s.page.Session, Read: true}, call, outcome{Known: true, Seq: p.Seq})
	}
}

// attempt sends the current page's answers once, and returns the status
// and reason of an answer that is not a 200.
func (s *shopper) attempt(vals url.Values) (page, int, string, error) {
	form := url.Values{}
	for k, v := range vals {
		form[k] = v
	}
	form.Set("_seq", strconv.FormatUint(s.page.Seq, 10))
	form.Set("_csrf", s.page.CSRF)
	req, _ := http.NewRequest("POST", s.base+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, p, err := s.do(req)
	if err != nil && resp == nil {
		return page{}, 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		reason := p.Error
		if why := resp.Header.Get(wire.HeaderUnavailable); why != "" {
			reason = why
		}
		return page{}, resp.StatusCode, reason, nil
	}
	if err != nil {
		return page{}, resp.StatusCode, "unreadable: " + err.Error(), nil
	}
	return p, resp.StatusCode, "", nil
}

// TestChaos runs clients through the gateway while a schedule injures the
// system: kill -9 of the primary (restarted, it rejoins as a backup),
// SIGSTOP of the primary past its lease (then SIGCONT), a restart of the
// NATS server, and with -chaos.cluster the loss of one of three NATS
// servers. Every client records its history; a checker (porcupine, against
// sessionModel) verifies each session's, and every acknowledged answer must
// be in the session's final state exactly once.
//
//	go test -tags e2e ./test/e2e -run TestChaos -v                                 # 20 s
//	go test -tags e2e ./test/e2e -run TestChaos -v -timeout 30m -chaos.duration 10m
func TestChaos(t *testing.T) {
	r := runChaos(t, *chaosDuration, "")
	for i, p := range r.problems {
		if i == 20 {
			break
		}
		t.Error(p)
	}
	if r.checker != porcupine.Ok {
		t.Errorf("the history is not linearizable against the session model: %s", r.checker)
	}
	if r.visible > 0 {
		t.Errorf("clients saw %d errors: %v", r.visible, r.visibleBy)
	}
	// The figures, last, on one line.
	t.Logf("chaos: %s", r)
}

// chaosReport is what a chaos run found.
type chaosReport struct {
	sessions, acked, injuries         int
	lost, duplicated, visible, failed int
	checker                           porcupine.CheckResult
	visibleBy                         map[string]int
	noReply                           int
	longest                           time.Duration
	problems                          []string
	kinds                             map[string]int
}

func (r chaosReport) String() string {
	return fmt.Sprintf("sessions=%d interactions_acknowledged=%d injuries=%d lost=%d duplicated=%d visible_errors=%d failed_sessions=%d longest_wait=%v checker=%s (injuries %v; attempts without an answer %d)",
		r.sessions, r.acked, r.injuries, r.lost, r.duplicated, r.visible, r.failed, r.longest.Round(time.Millisecond), r.checker, r.kinds, r.noReply)
}

// runChaos runs clients through the gateway for d while a schedule injures
// the system, the nodes with the planted bugs (a list for -plant-bugs; ""
// for none), and accounts for every session.
func runChaos(t *testing.T, d time.Duration, planted string) chaosReport {
	servers := 1
	if *chaosCluster {
		servers = 3
	}
	// Load clients start sessions at a rate no person does, from one
	// address: the nodes run without the new-session limit, as cmd/bench
	// does.
	t.Logf("nodes run with -new-per-minute -1; %d thinking clients, %d at no think time", *chaosSessions, *chaosLoad)
	args := []string{"-new-per-minute", "-1"}
	if planted != "" {
		args = append(args, "-plant-bugs", planted)
	}
	l, nc := externalWith(t, servers, args, "node-a", "node-b")
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	h := &history{}
	finished := make(chan *shopper, 1024)
	var clients sync.WaitGroup
	for i := range *chaosSessions + *chaosLoad {
		clients.Add(1)
		go chaosClient(ctx, i, l.GatewayURL(0), i >= *chaosSessions, h, &clients, finished)
	}
	var done []*shopper
	var collect sync.WaitGroup
	collect.Add(1)
	go func() {
		defer collect.Done()
		for s := range finished {
			done = append(done, s)
		}
	}()

	injuries := 0
	var kinds []string
	for ctx.Err() == nil {
		wait := *chaosEvery/2 + time.Duration(rand.Int64N(int64(*chaosEvery)))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		kind, err := injure(t, l, nc)
		if err != nil {
			t.Fatalf("injury %d (%s): %v", injuries+1, kind, err)
		}
		injuries++
		kinds = append(kinds, kind)
	}
	clients.Wait()
	close(finished)
	collect.Wait()

	res, _ := porcupine.CheckOperationsVerbose(sessionModel.ToModel(), h.ops, time.Minute)
	r := chaosReport{sessions: len(done), injuries: injuries, checker: res, visibleBy: h.visible, noReply: h.noReply,
		longest: h.longest, kinds: map[string]int{}, visible: h.visibleErrors()}
	for _, k := range kinds {
		r.kinds[k]++
	}
	for _, s := range done {
		r.acked += len(s.history)
		if s.failed != "" {
			// Every session is accounted for: a failed one is lost.
			r.failed++
			r.lost++
			r.problems = append(r.problems, s.errs...)
			continue
		}
		before := len(s.errs)
		s.check()
		for _, e := range s.errs[before:] {
			if strings.Contains(e, "acknowledged, final seq") || strings.Contains(e, "drivers in the final state") {
				r.duplicated++
			} else {
				r.lost++
			}
		}
		r.problems = append(r.problems, s.errs...)
	}
	return r
}

// injure applies one injury of the schedule and waits until the system is
// whole again (a new primary serves; the injured node or server is back).
func injure(t *testing.T, l *deploy.Local, nc *deploy.NATSCluster) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := status(l)
	if err != nil {
		return "status", err
	}
	owner := st.Owner
	other := "node-a"
	if owner == "node-a" {
		other = "node-b"
	}
	kinds := []string{"kill", "pause", "nats-restart"}
	if len(nc.Servers) > 1 {
		kinds = append(kinds, "nats-loss")
	}
	kind := kinds[rand.IntN(len(kinds))]
	switch kind {
	case "kill":
		l.Nodes[owner].Kill()
		if err := waitFor(ctx, func() bool { s, err := status(l); return err == nil && s.Owner == other }); err != nil {
			return kind, fmt.Errorf("no new primary after killing %s: %w", owner, err)
		}
		_, err := l.StartNode(ctx, owner, "backup")
		return kind, err
	case "pause":
		l.Nodes[owner].Pause()
		if err := waitFor(ctx, func() bool { s, err := status(l); return err == nil && s.Owner == other }); err != nil {
			l.Nodes[owner].Resume()
			return kind, fmt.Errorf("no new primary while %s was paused: %w", owner, err)
		}
		l.Nodes[owner].Resume()
		// Resumed, it learns it lost the group and serves as a backup.
		return kind, waitFor(ctx, func() bool { return nodeReady(l, owner, "backup") })
	case "nats-restart":
		i := rand.IntN(len(nc.Servers))
		nc.Servers[i].Kill()
		if err := nc.Start(ctx, i); err != nil {
			return kind, err
		}
	case "nats-loss":
		i := rand.IntN(len(nc.Servers))
		nc.Servers[i].Kill()
		time.Sleep(time.Duration(1+rand.IntN(3)) * time.Second) // the cluster runs one server short
		if err := nc.Start(ctx, i); err != nil {
			return kind, err
		}
	}
	// Both nodes are back: a primary serving, the other a ready backup.
	return kind, waitFor(ctx, func() bool {
		s, err := status(l)
		if err != nil || s.Owner == "" {
			return false
		}
		b := "node-a"
		if s.Owner == "node-a" {
			b = "node-b"
		}
		return nodeReady(l, s.Owner, "primary") && nodeReady(l, b, "backup")
	})
}

func nodeReady(l *deploy.Local, name, role string) bool {
	resp, err := http.Get(l.NodeURL(name) + "/understudy/status")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Role  string `json:"role"`
		Ready bool   `json:"ready"`
	}
	return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Ready && st.Role == role
}

func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
