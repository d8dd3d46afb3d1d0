package sim

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"understudy/internal/bugs"
)

var (
	schedules = flag.Int("sim.schedules", 10_000, "random schedules TestSchedules runs")
	seedBase  = flag.Uint64("sim.seed", 1, "the first schedule's seed")
	progress  = flag.Duration("sim.progress", 30*time.Second, "how often a long run logs its progress")
)

// runSeeds runs n schedules from seed first on every core and returns the
// first that broke an invariant (0 if none) with its result.
func runSeeds(t testing.TB, cfg Config, first uint64, n int) (uint64, Result, int) {
	var next atomic.Uint64
	next.Store(first)
	end := first + uint64(n)
	var mu sync.Mutex
	var found uint64
	var foundRes Result
	var ran atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	lastLog := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				mu.Lock()
				stop := found != 0 && seed > found
				mu.Unlock()
				if seed >= end || stop {
					return
				}
				c := cfg
				c.Seed = seed
				res := Run(c)
				k := ran.Add(1)
				mu.Lock()
				if res.Violation != nil && (found == 0 || seed < found) {
					found, foundRes = seed, res
				}
				if time.Since(lastLog) > *progress {
					lastLog = time.Now()
					t.Logf("%d schedules in %v (%.0f/s)", k, time.Since(start).Round(time.Second), float64(k)/time.Since(start).Seconds())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return found, foundRes, int(ran.Load())
}

// TestSchedules runs seeded random schedules with every fix in: no
// invariant may break.
func TestSchedules(t *testing.T) {
	n := *schedules
	if testing.Short() {
		n = min(n, 1000)
	}
	start := time.Now()
	seed, res, ran := runSeeds(t, Config{}, *seedBase, n)
	if seed != 0 {
		t.Fatalf("seed %d: %v\nreplay: go test ./sim -run TestReplay -sim.replay %d -v", seed, res.Violation, seed)
	}
	t.Logf("%d schedules from seed %d, no invariant broken, in %v", ran, *seedBase, time.Since(start).Round(time.Millisecond))
}

var replay = flag.Uint64("sim.replay", 0, "TestReplay: the seed to run with a trace")

// TestReplay runs one seed with a trace: what TestSchedules prints to
// replay a failure.
func TestReplay(t *testing.T) {
	if *replay == 0 {
		t.Skip("set -sim.replay SEED")
	}
	var planted bugs.Set
	if b := os.Getenv("SIM_BUGS"); b != "" {
		var err error
		if planted, err = bugs.Parse(b); err != nil {
			t.Fatal(err)
		}
	}
	res := Run(Config{Seed: *replay, Bugs: planted, Trace: func(s string) { t.Log(s) }})
	t.Logf("%d events, %d answers, %d failovers, ended at %v: %v", res.Events, res.Answers, res.Failovers, res.End, res.Violation)
}

// TestScenarios replays the scripted scenarios of testdata: each defect
// the safety review found, step by step, with and without its fix.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			file, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			sc, err := ParseScenario(f, file)
			if err != nil {
				t.Fatal(err)
			}
			runScenario(t, "as written", sc.Config, sc.Expect)
			if sc.Config.Bugs != (bugs.Set{}) {
				// The same steps with the defect fixed break nothing.
				fixed := sc.Config
				fixed.Bugs = bugs.Set{}
				runScenario(t, "fixed", fixed, "ok")
			}
		})
	}
}

// budget bounds the schedules TestPlantedBugs tries per bug.
var budget = flag.Int("sim.budget", 0, "TestPlantedBugs: schedules to try per planted bug (0: the test is not run)")

// TestEveryBugHasAScenario: TestScenarios replays, for every planted bug,
// a schedule in which the simulator reports it (and, fixed, nothing).
func TestEveryBugHasAScenario(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	covered := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "bug" {
				covered[strings.ToLower(f[1])] = true
			}
		}
	}
	for _, name := range bugs.Names() {
		if !covered[strings.ToLower(name)] && outsideModel[name] == "" {
			t.Errorf("planted bug %s has no scenario in testdata", name)
		}
	}
}

// outsideModel names the planted bugs whose defect the simulator cannot
// reach, with why and the test that finds each instead.
var outsideModel = map[string]string{
	// Within one tenure the simulated primary never looks up a session
	// it wrote in its copy (its memory holds it until it is demoted, and
	// a drain precedes every claim), and no one else writes a session.
	"PausedCopyNoOwn": "a session written by another writer (replay import) while the copy is paused: node/TestPausedPrimaryFindsASessionInTheStream",
}

// TestPlantedBugs: the simulator is evidence only once it has failed.
// Each planted bug must break an invariant within the budget of random
// schedules from seed 1; the test logs after how many. A long run:
//
//	go test ./sim -run TestPlantedBugs -sim.budget 1000000 -timeout 0 -v
func TestPlantedBugs(t *testing.T) {
	if *budget == 0 {
		t.Skip("a long run: set -sim.budget (TestScenarios replays a finding of each bug on every run)")
	}
	for _, name := range bugs.Names() {
		t.Run(name, func(t *testing.T) {
			if why := outsideModel[name]; why != "" {
				t.Skipf("outside the simulator's model: %s", why)
			}
			var cfg Config
			var err error
			if cfg.Bugs, err = bugs.Parse(name); err != nil {
				t.Fatal(err)
			}
			seed, res, ran := runSeeds(t, cfg, 1, *budget)
			if seed == 0 {
				t.Fatalf("planted %s: no invariant broken in %d schedules", name, ran)
			}
			t.Logf("planted %s found at seed %d (schedule %d): %v", name, seed, seed, res.Violation)
		})
	}
}

func runScenario(t *testing.T, how string, cfg Config, expect string) {
	t.Helper()
	var trace []string
	cfg.Trace = func(s string) { trace = append(trace, s) }
	res := Run(cfg)
	got := "ok"
	if res.Violation != nil {
		got = res.Violation.Invariant
	}
	if *verbose || got != expect {
		t.Logf("trace:\n%s", strings.Join(trace, "\n"))
	}
	if got != expect {
		t.Fatalf("%s: want %s, got %s: %v", how, expect, got, res.Violation)
	}
	t.Logf("%s: %s as expected (%v); %d events, %d answers, %d failovers", how, got, res.Violation, res.Events, res.Answers, res.Failovers)
}

var verbose = flag.Bool("sim.trace", false, "TestScenarios: log every scenario's trace")
