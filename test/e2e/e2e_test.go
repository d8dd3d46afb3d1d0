//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"understudy/internal/deploy"
)

var (
	sessions = flag.Int("e2e.sessions", 50, "concurrent sessions in the kill tests")
	kills    = flag.Int("e2e.kills", 3, "kills in TestFailoverTime")
	pauses   = flag.Int("e2e.pauses", 2, "pauses (SIGSTOP past the lease) in TestPauseFailoverTime")
	keep     = flag.Bool("e2e.keep", false, "keep the data and logs of each test")
)

var bins deploy.Binaries

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "understudy-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := deploy.ModuleRoot(".")
	if err == nil {
		bins, err = deploy.Build(context.Background(), root, dir, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deployment starts a gateway with embedded NATS, stopped (and its logs
// shown if the test failed) when the test ends.
func deployment(t *testing.T) *deploy.Local {
	t.Helper()
	dir := t.TempDir()
	if *keep {
		dir, _ = os.MkdirTemp("", "understudy-e2e-"+t.Name())
		t.Logf("data and logs in %s", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := deploy.StartLocal(ctx, deploy.Config{Bin: bins, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		if t.Failed() {
			dumpLogs(t, dir)
		}
	})
	return l
}

// startNode starts a node and waits until it is ready; env is added to its
// environment (UNDERSTUDY_FAULT arms a fault).
func startNode(t *testing.T, l *deploy.Local, name, role string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := l.StartNodeEnv(ctx, name, role, env); err != nil {
		t.Fatal(err)
	}
}

// local starts a gateway with embedded NATS and the named nodes: the
// first a primary, the others backups.
func local(t *testing.T, nodes ...string) *deploy.Local {
	t.Helper()
	l := deployment(t)
	for i, n := range nodes {
		role := "backup"
		if i == 0 {
			role = "primary"
		}
		startNode(t, l, n, role)
	}
	waitOwner(t, l, nodes[0])
	return l
}

func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range logs {
		data, _ := os.ReadFile(f)
		lines := collapseRepeats(strings.Split(strings.TrimSpace(string(data)), "\n"))
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last lines)\n%s", filepath.Base(f), strings.Join(lines, "\n"))
	}
}

// collapseRepeats folds runs of log lines that differ only in their time
// into the first of them and a count, so that a node that logs the same
// failure many times still shows what came before it.
func collapseRepeats(lines []string) []string {
	untimed := func(l string) string {
		if i := strings.Index(l, " level="); i >= 0 {
			return l[i:]
		}
		return l
	}
	var out []string
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && untimed(lines[j]) == untimed(lines[i]) {
			j++
		}
		out = append(out, lines[i])
		if j-i > 1 {
			out = append(out, fmt.Sprintf("(the line above, %d times more)", j-i-1))
		}
		i = j
	}
	return out
}

type groupStatus struct {
	Epoch   uint64 `json:"epoch"`
	Owner   string `json:"owner"`
	Members []struct {
		Node     string `json:"node"`
		Role     string `json:"role"`
		CaughtUp bool   `json:"caught_up"`
		Gone     bool   `json:"gone"`
	} `json:"members"`
}

// status asks the first gateway that answers (one may be restarting).
func status(l *deploy.Local) (groupStatus, error) {
	var st groupStatus
	var err error
	for i := range l.GatewayCount() {
		var resp *http.Response
		if resp, err = http.Get(l.GatewayURL(i) + "/understudy/group"); err != nil {
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil {
			return st, nil
		}
	}
	return st, err
}

// waitOwner waits until the gateway routes to node.
func waitOwner(t *testing.T, l *deploy.Local, node string) groupStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := status(l)
		if err == nil && st.Owner == node {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("owner is %q, want %s (%v)", st.Owner, node, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the gateway's view
	}
}

// load runs n shoppers through the gateway concurrently. kill, if set, runs
// once when the shoppers have made about a third of their way.
func load(t *testing.T, base string, n int, during func()) []*shopper {
	shoppers := make([]*shopper, n)
	var wg sync.WaitGroup
	var progress sync.WaitGroup
	progress.Add(n)
	for i := range shoppers {
		s := newShopper(i, base)
		shoppers[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			marked := false
			mark := func() {
				if !marked {
					marked = true
					progress.Done()
				}
			}
			defer mark()
			if !s.start() {
				return
			}
			at := 2 + rand.IntN(3)
			for s.step() {
				if len(s.history) >= at {
					mark()
				}
			}
		}()
	}
	if during != nil {
		progress.Wait()
		during()
	}
	wg.Wait()
	return shoppers
}

func verify(t *testing.T, shoppers []*shopper) {
	t.Helper()
	var errs []string
	answered := 0
	for _, s := range shoppers {
		if len(s.errs) == 0 {
			s.check()
		}
		errs = append(errs, s.errs...)
		answered += len(s.history)
	}
	t.Logf("%d sessions, %d answers acknowledged, %d problems", len(shoppers), answered, len(errs))
	for i, e := range errs {
		if i == 20 {
			t.Errorf("... and %d more", len(errs)-20)
			break
		}
		t.Error(e)
	}
}

// TestKillPrimaryUnderLoad: sessions through the gateway; the primary is
// killed with SIGKILL at a random moment; every session finishes on the
// backup, with every acknowledged answer in its final state exactly once,
// and no client sees an error.
func TestKillPrimaryUnderLoad(t *testing.T) {
	l := local(t, "node-a", "node-b")
	shoppers := load(t, l.GatewayURL(0), *sessions, func() {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		l.Nodes["node-a"].Kill()
		t.Log("killed node-a")
	})
	verify(t, shoppers)
	st := waitOwner(t, l, "node-b")
	if st.Epoch != 2 {
		t.Errorf("epoch %d after one failover", st.Epoch)
	}
	served := map[string]int{}
	for _, s := range shoppers {
		for _, h := range s.history {
			served[h.Node]++
		}
	}
	t.Logf("answers served by node: %v", served)
	if served["node-b"] == 0 {
		t.Error("the backup served nothing: the kill came too late to test anything")
	}
}

// TestKillPoints kills the primary at chosen points of an interaction,
// from inside (UNDERSTUDY_FAULT makes the node SIGKILL itself there).
func TestKillPoints(t *testing.T) {
	for _, point := range []string{"before-publish", "after-publish"} {
		t.Run(point, func(t *testing.T) {
			l := deployment(t)
			startNode(t, l, "node-a", "primary", "UNDERSTUDY_FAULT="+point+":40")
			startNode(t, l, "node-b", "backup")
			waitOwner(t, l, "node-a")
			shoppers := load(t, l.GatewayURL(0), *sessions/2, nil)
			verify(t, shoppers)
			if ok, _ := l.Nodes["node-a"].Exited(); !ok {
				t.Fatal("the fault never fired")
			}
			waitOwner(t, l, "node-b")
		})
	}
}

// TestKillPointsFindPlantedBug: the check TestKillPoints relies on is
// evidence only once it has failed. With the primary answering before its
// publish is acknowledged (a planted bug) and killed between the answer and
// the publish, some session must be found to have lost an answer.
func TestKillPointsFindPlantedBug(t *testing.T) {
	l := deployment(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := l.StartNodeEnv(ctx, "node-a", "primary", []string{"UNDERSTUDY_FAULT=before-publish:40"}, "-plant-bugs", "AnswerBeforeAck")
	if err != nil {
		t.Fatal(err)
	}
	startNode(t, l, "node-b", "backup")
	waitOwner(t, l, "node-a")
	shoppers := load(t, l.GatewayURL(0), *sessions/2, nil)
	var problems []string
	for _, s := range shoppers {
		if len(s.errs) == 0 {
			s.check()
		}
		problems = append(problems, s.errs...)
	}
	if ok, _ := l.Nodes["node-a"].Exited(); !ok {
		t.Fatal("the fault never fired")
	}
	if len(problems) == 0 {
		t.Fatal("planted AnswerBeforeAck, killed after an answer it never published: no session reported a lost answer")
	}
	t.Logf("planted AnswerBeforeAck found: %d problems, the first: %s", len(problems), problems[0])
}

// TestKillDuringPromotion: the primary is killed, and the backup that wins
// the failover is killed during its promotion; a second backup takes over.
func TestKillDuringPromotion(t *testing.T) {
	l := deployment(t)
	ctx := context.Background()
	startNode(t, l, "node-a", "primary")
	// node-b dies the first time it is promoted.
	startNode(t, l, "node-b", "backup", "UNDERSTUDY_FAULT=promote:1")
	waitOwner(t, l, "node-a")
	shoppers := load(t, l.GatewayURL(0), *sessions/2, func() {
		// node-c joins now, so that node-b, a backup for longer, is
		// likelier to be the one that wins, and dies.
		if _, err := l.StartNode(ctx, "node-c", "backup"); err != nil {
			t.Error(err)
		}
		l.Nodes["node-a"].Kill()
	})
	verify(t, shoppers)
	st, _ := status(l)
	t.Logf("owner %s at epoch %d", st.Owner, st.Epoch)
	if st.Owner == "node-a" || st.Owner == "" {
		t.Fatalf("owner %q", st.Owner)
	}
}

// TestFailoverTime kills the primary again and again under light load,
// restarting each killed node as a backup (a fenced rejoin), and reports
// the time from each kill to the first successful answer through the
// gateway from the new primary.
func TestFailoverTime(t *testing.T) {
	failoverTimes(t, "kill -9", *kills, func(l *deploy.Local, p *deploy.Process) { p.Kill() },
		func(ctx context.Context, l *deploy.Local, name string) error {
			_, err := l.StartNode(ctx, name, "backup") // the killed node comes back as a backup
			return err
		})
}

// TestPauseFailoverTime pauses the primary (SIGSTOP) for longer than its
// lease under light load; a backup takes over; the paused node, resumed,
// finds it lost the group and carries on as a backup. It reports the time
// from each pause to the first answer from the new primary, and checks
// that the old primary answers nothing once resumed.
func TestPauseFailoverTime(t *testing.T) {
	failoverTimes(t, "SIGSTOP", *pauses, func(l *deploy.Local, p *deploy.Process) { p.Pause() },
		func(ctx context.Context, l *deploy.Local, name string) error {
			l.Nodes[name].Resume()
			// Resumed, the old primary must not answer: it serves as a
			// backup from now on.
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := http.Get(l.NodeURL(name) + "/understudy/status")
				if err == nil {
					var st struct {
						Role  string `json:"role"`
						Ready bool   `json:"ready"`
					}
					json.NewDecoder(resp.Body).Decode(&st)
					resp.Body.Close()
					if st.Role == "backup" && st.Ready {
						break
					}
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s did not turn into a ready backup after it was resumed", name)
				}
				time.Sleep(20 * time.Millisecond) // polling its status
			}
			resp, err := http.Get(l.NodeURL(name) + "/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return fmt.Errorf("resumed old primary %s answered %d", name, resp.StatusCode)
			}
			return nil
		})
}

func failoverTimes(t *testing.T, what string, n int, injure func(*deploy.Local, *deploy.Process), recover func(context.Context, *deploy.Local, string) error) {
	l := local(t, "node-a", "node-b")
	ctx := context.Background()
	stop := make(chan struct{})
	type answer struct {
		at   time.Time
		node string
	}
	var mu sync.Mutex
	var answers []answer
	var problems []string
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				s := newShopper(1000*i+n, l.GatewayURL(0))
				if s.start() {
					for s.step() {
						mu.Lock()
						h := s.history[len(s.history)-1]
						answers = append(answers, answer{h.At.Add(h.Took), h.Node})
						mu.Unlock()
					}
					if len(s.errs) == 0 {
						s.check()
					}
				}
				mu.Lock()
				problems = append(problems, s.errs...)
				mu.Unlock()
			}
		}()
	}
	var times []time.Duration
	primary, backup := "node-a", "node-b"
	for k := range n {
		time.Sleep(300 * time.Millisecond) // some load on the primary first
		t0 := time.Now()
		injure(l, l.Nodes[primary])
		var took time.Duration
		deadline := time.Now().Add(20 * time.Second)
		for took == 0 && time.Now().Before(deadline) {
			mu.Lock()
			for _, a := range answers {
				if a.node == backup && a.at.After(t0) {
					took = a.at.Sub(t0)
					break
				}
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
		if took == 0 {
			t.Fatalf("%s %d: no answer from %s within 20s", what, k+1, backup)
		}
		times = append(times, took)
		waitOwner(t, l, backup)
		if err := recover(ctx, l, primary); err != nil {
			t.Fatal(err)
		}
		primary, backup = backup, primary
	}
	close(stop)
	wg.Wait()
	slices.Sort(times)
	t.Logf("failover after %s, %d times: p50 %v, max %v (all: %v)", what, len(times), times[len(times)/2], times[len(times)-1], times)
	for i, p := range problems {
		if i == 20 {
			break
		}
		t.Error(p)
	}
}
