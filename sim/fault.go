package sim

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"understudy/internal/bugs"
)

// Fault is one injury.
type Fault struct {
	At   time.Duration
	Kind string // pause, crash, stall, release, slow, election, signal, lossy
	Node string // "owner": whoever owns the group then; "" for slow, lossy
	Dur  time.Duration
}

func (f Fault) String() string {
	return fmt.Sprintf("at %v %s %s %v", f.At, f.Kind, f.Node, f.Dur)
}

func (w *world) randomFaults() []Fault {
	var fs []Fault
	injuries := w.cfg.Injuries
	if injuries == 0 {
		injuries = 2 + w.rnd.IntN(8)
	}
	for range injuries {
		f := Fault{At: time.Duration(w.rnd.Int64N(int64(w.cfg.Faults)))}
		node := "owner"
		if w.rnd.IntN(3) == 0 {
			node = fmt.Sprintf("n%d", w.rnd.IntN(w.cfg.Nodes))
		}
		switch r := w.rnd.IntN(10); {
		case r < 4:
			f.Kind, f.Node, f.Dur = "pause", node, time.Duration(20+w.rnd.IntN(800))*time.Millisecond
		case r < 6:
			f.Kind, f.Node, f.Dur = "crash", node, time.Duration(100+w.rnd.IntN(1500))*time.Millisecond
		case r < 7:
			f.Kind, f.Node = "release", "owner"
		case r < 8:
			f.Kind, f.Dur = "slow", time.Duration(50+w.rnd.IntN(600))*time.Millisecond
		case r < 9:
			f.Kind, f.Dur = "election", time.Duration(50+w.rnd.IntN(500))*time.Millisecond
		default:
			f.Kind, f.Node = "signal", "owner"
		}
		// Faults end by Faults: a pause or an outage does not outlast it.
		if end := f.At + f.Dur; end > w.cfg.Faults {
			f.Dur = w.cfg.Faults - f.At
		}
		fs = append(fs, f)
	}
	return fs
}

func (w *world) inject(f Fault) {
	var n *node
	if f.Node == "owner" {
		n = w.owner()
	} else if f.Node != "" {
		n = w.node(f.Node)
	}
	w.trace("inject %s (%v)", f, n)
	switch f.Kind {
	case "pause":
		if n != nil && n.up {
			n.pausedUntil = max(n.pausedUntil, w.now+T(f.Dur))
		}
	case "crash":
		if n != nil && n.up {
			n.crash()
			w.after(f.Dur, func() { n.boot(n == w.nodes[0]); w.trace("%s restarted", n.name) }) // with the role it was started with
		}
	case "release":
		if n != nil && n.up {
			n.on(0, n.releaseGroup)
		}
	case "slow":
		w.slowUntil = max(w.slowUntil, w.now+T(f.Dur))
	case "election":
		w.noLeader = max(w.noLeader, w.now+T(f.Dur))
	case "stall":
		if n != nil {
			n.stallUntil = max(n.stallUntil, w.now+T(f.Dur))
		}
	case "lossy":
		w.lossy = true
	case "signal":
		if n != nil {
			w.signal(n.name)
		}
	}
}

// Scenario is a scripted run: a configuration, faults at chosen times,
// and what the run must find.
type Scenario struct {
	Name   string
	Config Config
	// Expect is "ok" or the invariant the run must break ("I2").
	Expect string
}

// ParseScenario reads a scenario: one directive a line, # for comments.
//
//	seed 7            the run's seed
//	nodes 3           members
//	clients 4         sessions
//	steps 8           interactions per session
//	faults 2s         faults happen before this
//	bug AnswerAnyEpoch
//	at 300ms pause owner 700ms
//	at 1s crash n1 400ms
//	at 1s release owner
//	at 1s slow 300ms
//	at 1s election 200ms  the bucket and the stream elect a leader
//	at 0s stall n0 300ms  n0's publishes are held in the network
//	at 0s lossy           messages may be lost until faults end
//	random                the seed's random faults too
//	expect ok | I1 ... I6
func ParseScenario(name string, r io.Reader) (Scenario, error) {
	sc := Scenario{Name: name, Config: Config{Script: []Fault{}}}
	var planted []string
	s := bufio.NewScanner(r)
	line := 0
	for s.Scan() {
		line++
		text := strings.TrimSpace(s.Text())
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		f := strings.Fields(text)
		bad := func(err error) error { return fmt.Errorf("%s:%d: %q: %w", name, line, text, err) }
		num := func(i int) (int, error) {
			if len(f) <= i {
				return 0, fmt.Errorf("a number missing")
			}
			return strconv.Atoi(f[i])
		}
		dur := func(i int) (time.Duration, error) {
			if len(f) <= i {
				return 0, fmt.Errorf("a duration missing")
			}
			return time.ParseDuration(f[i])
		}
		var err error
		switch f[0] {
		case "seed":
			var v int
			v, err = num(1)
			sc.Config.Seed = uint64(v)
		case "nodes":
			sc.Config.Nodes, err = num(1)
		case "clients":
			sc.Config.Clients, err = num(1)
		case "steps":
			sc.Config.Steps, err = num(1)
		case "faults":
			sc.Config.Faults, err = dur(1)
		case "bug":
			if len(f) < 2 {
				return sc, bad(fmt.Errorf("a bug's name missing"))
			}
			planted = append(planted, f[1])
		case "random":
			// The seed's random faults, before the scripted ones.
			sc.Config.Random = true
		case "expect":
			if len(f) < 2 {
				return sc, bad(fmt.Errorf("ok or an invariant missing"))
			}
			sc.Expect = f[1]
		case "at":
			var ft Fault
			if ft.At, err = dur(1); err != nil {
				return sc, bad(err)
			}
			if len(f) < 3 {
				return sc, bad(fmt.Errorf("a fault missing"))
			}
			ft.Kind = f[2]
			switch ft.Kind {
			case "pause", "crash", "stall":
				if len(f) < 5 {
					return sc, bad(fmt.Errorf("want: at T %s NODE DURATION", ft.Kind))
				}
				ft.Node = f[3]
				ft.Dur, err = dur(4)
			case "release", "signal":
				if len(f) < 4 {
					return sc, bad(fmt.Errorf("want: at T %s NODE", ft.Kind))
				}
				ft.Node = f[3]
			case "slow", "election":
				ft.Dur, err = dur(3)
			case "lossy":
			default:
				return sc, bad(fmt.Errorf("unknown fault %q", ft.Kind))
			}
			sc.Config.Script = append(sc.Config.Script, ft)
		default:
			return sc, bad(fmt.Errorf("unknown directive %q", f[0]))
		}
		if err != nil {
			return sc, bad(err)
		}
	}
	if sc.Expect == "" {
		return sc, fmt.Errorf("%s: no expect line", name)
	}
	var err error
	if sc.Config.Bugs, err = bugs.Parse(strings.Join(planted, ",")); err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	return sc, s.Err()
}
