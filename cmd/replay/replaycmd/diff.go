package replaycmd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"understudy/model"
)

type diffJSON struct {
	Session model.SessionID `json:"session"`
	A       msgJSON         `json:"a"`
	B       msgJSON         `json:"b"`
	Waiting [2]string       `json:"waiting"` // where each waits; "(finished)" once finished
	Steps   stepsDiff       `json:"steps"`
	// Params are the changed values, by path: State.Get's dotted paths
	// into everything collected ("applicant.name", "drivers.0.born") when
	// both snapshots materialize, else "<step location>#<step id>.<param>".
	Params []paramDiff `json:"params"`
	Notes  []string    `json:"notes,omitempty"`
}

type stepsDiff struct {
	Added    []stepInfo `json:"added"`
	Removed  []stepInfo `json:"removed"`
	Finished []stepInfo `json:"finished"` // done in b, not in a
	Reopened []stepInfo `json:"reopened"` // done in a, not in b (sent back)
}

type paramDiff struct {
	Path string       `json:"path"`
	Op   string       `json:"op"` // changed, added, removed
	Old  *model.Value `json:"old,omitempty"`
	New  *model.Value `json:"new,omitempty"`
}

func runDiff(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("diff", "<session> <a> <b>", "Compares two snapshots of a session, a and b, given by interaction sequence (or\nby stream sequence with -stream): the steps added, removed, finished or reopened,\nand every value changed, added or removed, as path: old -> new.", "nats", "group", "json")
	byStream := f.Bool("stream", false, "a and b are stream sequences, not interaction sequences")
	pos, err := f.parse(args, 3, 3)
	if err != nil {
		return done(err)
	}
	id, err := sessionArg(pos[0])
	if err != nil {
		return err
	}
	var sels [2]selector
	for i, s := range pos[1:] {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return fmt.Errorf("%q: not a sequence number", s)
		}
		if *byStream {
			if n == 0 {
				return fmt.Errorf("stream sequences start at 1")
			}
			sels[i] = selector{seq: -1, streamSeq: n}
		} else {
			sels[i] = selector{seq: int64(n)}
		}
	}
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	v, err := f.openSession(ctx, id)
	if err != nil {
		return err
	}
	defer v.c.close()
	c, stream, claims, h := v.c, v.stream, v.claims, v.msgs
	var msgs [2]message
	var sess [2]*model.Session
	for i, sel := range sels {
		if msgs[i], err = c.pick(ctx, stream, id, h, sel); err != nil {
			return err
		}
		if msgs[i].Err != nil {
			return fmt.Errorf("%w: %w", ErrUndecodable, msgs[i].Err)
		}
		if sess[i], err = decode(msgs[i]); err != nil {
			return err
		}
	}
	out := diffJSON{Session: id, A: toJSON(msgs[0]), B: toJSON(msgs[1])}
	for i, m := range msgs {
		if m.Fenced {
			out.Notes = append(out.Notes, fmt.Sprintf("%c (stream seq %d) is fenced: %s", 'a'+i, m.StreamSeq, note(m, claims)))
		}
		loc, fin, err := waiting(sess[i])
		switch {
		case fin:
			loc = "(finished)"
		case err != nil:
			loc = "(" + err.Error() + ")"
		}
		out.Waiting[i] = loc
	}
	out.Steps = diffSteps(steps(sess[0]), steps(sess[1]))
	vals, notes := e.values(ctx, sess)
	out.Notes = append(out.Notes, notes...)
	out.Params = diffValues(vals[0], vals[1])

	if *f.json {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "session %s\n", id)
	for i, m := range msgs {
		fmt.Fprintf(&b, "  %c  seq %d, stream seq %d, epoch %d, node %s, stored %s, %s\n", 'a'+i, m.Seq, m.StreamSeq, m.Epoch, m.Node, when(m.Time), m.state())
	}
	for _, n := range out.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if out.Waiting[0] != out.Waiting[1] {
		fmt.Fprintf(&b, "waiting  %s -> %s\n", out.Waiting[0], out.Waiting[1])
	} else {
		fmt.Fprintf(&b, "waiting  %s (unchanged)\n", out.Waiting[0])
	}
	st := out.Steps
	if n := len(st.Added) + len(st.Removed) + len(st.Finished) + len(st.Reopened); n > 0 {
		b.WriteString("steps\n")
		for _, g := range []struct {
			mark  string
			steps []stepInfo
		}{{"+", st.Added}, {"-", st.Removed}, {"done", st.Finished}, {"reopened", st.Reopened}} {
			for _, s := range g.steps {
				fmt.Fprintf(&b, "  %s #%d %s %s\n", g.mark, s.ID, s.Kind, dash(s.Location))
			}
		}
	}
	if len(out.Params) > 0 {
		b.WriteString("values\n")
		for _, p := range out.Params {
			switch p.Op {
			case "changed":
				fmt.Fprintf(&b, "  ~ %s: %s -> %s\n", p.Path, show(*p.Old), show(*p.New))
			case "added":
				fmt.Fprintf(&b, "  + %s: %s\n", p.Path, show(*p.New))
			case "removed":
				fmt.Fprintf(&b, "  - %s: %s\n", p.Path, show(*p.Old))
			}
		}
	}
	if len(out.Params) == 0 && len(st.Added)+len(st.Removed)+len(st.Finished)+len(st.Reopened) == 0 {
		b.WriteString("no differences in steps or values\n")
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}

func diffSteps(a, b []stepInfo) stepsDiff {
	d := stepsDiff{Added: []stepInfo{}, Removed: []stepInfo{}, Finished: []stepInfo{}, Reopened: []stepInfo{}}
	am, bm := map[model.StepID]stepInfo{}, map[model.StepID]stepInfo{}
	for _, s := range a {
		am[s.ID] = s
	}
	for _, s := range b {
		bm[s.ID] = s
		old, ok := am[s.ID]
		switch {
		case !ok || old.Path != s.Path || old.Kind != s.Kind:
			if ok {
				d.Removed = append(d.Removed, old)
			}
			d.Added = append(d.Added, s)
		case !old.Done && s.Done:
			d.Finished = append(d.Finished, s)
		case old.Done && !s.Done:
			d.Reopened = append(d.Reopened, s)
		}
	}
	for _, s := range a {
		if _, ok := bm[s.ID]; !ok {
			d.Removed = append(d.Removed, s)
		}
	}
	for _, l := range [][]stepInfo{d.Added, d.Removed, d.Finished, d.Reopened} {
		slices.SortFunc(l, func(x, y stepInfo) int { return int(x.ID) - int(y.ID) })
	}
	return d
}

// values flattens what each session collected: by State paths when both
// materialize with the registry, else by step and param.
func (e *env) values(ctx context.Context, sess [2]*model.Session) ([2]map[string]model.Value, []string) {
	var out [2]map[string]model.Value
	var notes []string
	ok := true
	for i, s := range sess {
		_, run, _, err := e.materialize(ctx, s, nil)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%c does not materialize with this tool's registry (%v): values compared step by step", 'a'+i, err))
			ok = false
			break
		}
		out[i] = map[string]model.Value{}
		flatten("", run.Values(), out[i])
	}
	if ok {
		return out, notes
	}
	for i, s := range sess {
		out[i] = map[string]model.Value{}
		for _, st := range steps(s) {
			for _, p := range st.params {
				flatten(fmt.Sprintf("%s#%d.%s", st.Location, st.ID, p.Name), p.Value, out[i])
			}
		}
	}
	return out, notes
}

func diffValues(a, b map[string]model.Value) []paramDiff {
	out := []paramDiff{}
	paths := slices.Sorted(maps.Keys(a))
	for p := range b {
		if _, ok := a[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		old, inA := a[p]
		nw, inB := b[p]
		switch {
		case inA && inB && !old.Equal(nw):
			out = append(out, paramDiff{Path: p, Op: "changed", Old: &old, New: &nw})
		case !inA:
			out = append(out, paramDiff{Path: p, Op: "added", New: &nw})
		case !inB:
			out = append(out, paramDiff{Path: p, Op: "removed", Old: &old})
		}
	}
	return out
}
