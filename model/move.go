package model

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Going back and changing an answer are interactions like any other: they
// are checked against the page's sequence, advance it, and give a new Run
// that a serving node replicates before it answers, so a step back
// survives a failover as an answer does.
//
// Both rewind the session to an earlier page, discarding what followed it
// (the simple steps that followed run again, with the new answers). What
// the user had answered on the discarded pages is remembered in the
// session (resume, under the root's reserved value resumeParam) and filled
// in again when the same page comes round: after Back the user sees it
// pre-filled; after Change it is answered again for them, page after page,
// until the Review page they came from.

// resumeParam is the root composite's value that holds what a step back
// discarded. Its name cannot be a step's or a field's (they have no dots),
// so no State lookup ever meets it, and Values leaves it out.
const resumeParam = ".resume"

// Back returns to the page before the one waiting: the page the user
// answered last. Its answers stay filled in; the pages after it are
// discarded and their answers remembered. On a page reached through
// Change that the user had answered before, Back instead keeps that page's
// answers and returns to the Review page, as if it had been answered
// again unchanged.
//
// Errors: those of Submit for a stale or finished session, and
// ErrCannotMove on the first page.
func (e *Engine) Back(ctx context.Context, r *Run, in Input) (*Run, error) {
	wid, _, err := r.accept(in)
	if err != nil {
		return nil, err
	}
	n := r.clone()
	res := n.loadResume()
	if w := n.s.Pool.Interactive[wid]; res.replay && len(w.Params) > 0 {
		w.Done = true
		return n.advance(ctx, in, res)
	}
	prev := n.previous(wid)
	if prev == 0 {
		return nil, n.stepError(wid, fmt.Errorf("%w: back from the first page", ErrCannotMove))
	}
	n.rewindRemembering(prev, res)
	return n.advance(ctx, in, res)
}

// Change leaves the Review page that is waiting for the page a section of
// it lists (Answered.Change), with its answers filled in. Once it is
// answered, the pages that followed it are answered again with what the
// user had answered there, up to the Review page; a page the new answer
// brings in that was never answered waits for the user.
//
// Errors: those of Submit for a stale or finished session, and
// ErrCannotMove when the waiting page is not a Review page or section is
// not one it lists.
func (e *Engine) Change(ctx context.Context, r *Run, in Input, section string) (*Run, error) {
	wid, step, err := r.accept(in)
	if err != nil {
		return nil, err
	}
	if !step.review {
		return nil, r.stepError(wid, fmt.Errorf("%w: change from a page that is not a review", ErrCannotMove))
	}
	target := StepID(0)
	for _, a := range e.Answers(ctx, r) {
		if a.Change == section {
			id, _ := strconv.ParseUint(section, 10, 32)
			target = StepID(id)
		}
	}
	if target == 0 {
		return nil, r.stepError(wid, fmt.Errorf("%w: no section %s on this page", ErrCannotMove, quoteShort(section)))
	}
	n := r.clone()
	res := n.loadResume()
	n.rewindRemembering(target, res)
	res.replay = true
	return n.advance(ctx, in, res)
}

// accept checks that an interaction may be applied to r: the session is
// not finished and the page it came from is the current one. It returns
// the waiting step.
func (r *Run) accept(in Input) (StepID, *InteractiveStep, error) {
	s := r.s
	if s.Finished() {
		return 0, nil, &StepError{Session: s.ID, App: key(s.App, s.Version), Err: ErrFinished}
	}
	if in.Seq != s.Seq {
		return 0, nil, &StepError{Session: s.ID, App: key(s.App, s.Version),
			Err: fmt.Errorf("%w: page at %d, session at %d", ErrStaleInteraction, in.Seq, s.Seq)}
	}
	return r.waiting()
}

// advance stamps the interaction on n and runs it to its next page.
func (n *Run) advance(ctx context.Context, in Input, res *resume) (*Run, error) {
	now := in.Now.UTC()
	n.s.Seq++
	n.s.Updated = now
	n.s.Node, n.s.Epoch = in.Node, in.Epoch
	x := &exec{ctx: ctx, run: n, now: now, resume: res}
	if _, err := x.enter(n.s.Root); err != nil {
		return nil, err
	}
	x.saveResume()
	return n, nil
}

// previous returns the page answered last before step id (the interactive
// step done with the highest id below id: steps are created in the order
// the user meets them, and a rewind discards every later one), or 0.
func (r *Run) previous(id StepID) StepID {
	var prev StepID
	for sid, st := range r.s.Pool.Interactive {
		if st.Done && sid < id && sid > prev {
			prev = sid
		}
	}
	return prev
}

// iteration returns the number, from 1, of the repeat iteration step id
// belongs to (the innermost repeat in its application), or 0.
func (r *Run) iteration(id StepID) int {
	child := id
	for range r.s.Pool.Len() + 1 {
		h := r.header(child)
		if h == nil || h.Parent == 0 {
			return 0
		}
		if _, isCall := r.s.Pool.Application[h.Parent]; isCall {
			return 0
		}
		if c, ok := r.s.Pool.Composite[h.Parent]; ok {
			if def, ok := r.defs[h.Parent].def.(*CompositeStep); ok && def.mode == repeatMode {
				return slices.Index(c.Children, child) + 1
			}
		}
		child = h.Parent
	}
	return 0
}

// occurrence counts the interactive steps at step id's location created
// before it: a remembered answer belongs to the page at the same location
// and occurrence (the second driver's page to the second driver's).
func (r *Run) occurrence(id StepID) int {
	loc, n := r.location(id), 0
	for sid := range r.s.Pool.Interactive {
		if sid < id && r.location(sid) == loc {
			n++
		}
	}
	return n
}

// rewindRemembering rewinds to step id, as rewind does, after
// remembering in res the answers of every page it discards.
func (r *Run) rewindRemembering(id StepID, res *resume) {
	var dropped []StepID
	child := id
	for cur := r.header(child).Parent; cur != 0; child, cur = cur, r.header(cur).Parent {
		if c, ok := r.s.Pool.Composite[cur]; ok {
			i := slices.Index(c.Children, child)
			for _, later := range c.Children[i+1:] {
				r.walk(later, func(s StepID) { dropped = append(dropped, s) })
			}
		}
	}
	if len(dropped) > 0 {
		// Every page's location and occurrence, in one pass over the pages
		// in the order they were created.
		ids := slices.Sorted(maps.Keys(r.s.Pool.Interactive))
		seen := map[string]int{}
		occ := make(map[StepID]int, len(ids))
		locs := make(map[StepID]string, len(ids))
		for _, sid := range ids {
			loc := r.location(sid)
			locs[sid], occ[sid] = loc, seen[loc]
			seen[loc]++
		}
		for _, s := range dropped {
			if st, ok := r.s.Pool.Interactive[s]; ok && len(st.Params) > 0 {
				res.remember(locs[s], occ[s], st.Params)
			}
		}
	}
	r.rewind(id)
}

// walk calls fn for step id and every step below it.
func (r *Run) walk(id StepID, fn func(StepID)) {
	fn(id)
	p := &r.s.Pool
	if c, ok := p.Composite[id]; ok {
		for _, ch := range c.Children {
			r.walk(ch, fn)
		}
	}
	if a, ok := p.Application[id]; ok && a.Root != 0 {
		r.walk(a.Root, fn)
	}
}

// resume is what going back discarded: the answers of pages, by location
// and occurrence, and whether they are being answered again for the user
// (after Change) rather than only filled in (after Back).
type resume struct {
	pages   []remembered
	replay  bool
	changed bool
}

type remembered struct {
	at     string
	n      int
	params Params
}

func (res *resume) remember(at string, n int, ps Params) {
	res.changed = true
	for i, p := range res.pages {
		if p.at == at && p.n == n {
			res.pages[i].params = slices.Clone(ps)
			return
		}
	}
	res.pages = append(res.pages, remembered{at, n, slices.Clone(ps)})
}

// take removes and returns the answers remembered for a page.
func (res *resume) take(at string, n int) (Params, bool) {
	for i, p := range res.pages {
		if p.at == at && p.n == n {
			res.pages = slices.Delete(res.pages, i, i+1)
			res.changed = true
			return p.params, true
		}
	}
	return nil, false
}

// loadResume reads what the session remembers. A value that is not what
// saveResume writes (a hand-made snapshot) is ignored: it only ever
// pre-fills answers, which the user sees.
func (r *Run) loadResume() *resume {
	res := &resume{}
	root, ok := r.s.Pool.Composite[r.s.Root]
	if !ok {
		return res
	}
	v, ok := root.Params.Get(resumeParam)
	if !ok || v.Kind() != KindMap {
		return res
	}
	res.replay = v.Key("replay").Bool()
	for _, p := range v.Key("pages").List() {
		ps := p.Key("values")
		if p.Key("at").Kind() != KindString || p.Key("n").Kind() != KindInt || ps.Kind() != KindMap {
			continue
		}
		res.pages = append(res.pages, remembered{p.Key("at").Str(), int(p.Key("n").Int()), ps.Entries()})
	}
	return res
}

// saveResume writes what the run remembers into the root's params, or
// removes it when there is nothing left to remember or the application
// has finished.
func (x *exec) saveResume() {
	root, ok := x.run.s.Pool.Composite[x.run.s.Root]
	if !ok {
		return
	}
	res := x.resume
	drop := x.run.s.Finished()
	if !drop {
		if res == nil || !res.changed {
			return
		}
		drop = len(res.pages) == 0 && !res.replay
	}
	if drop {
		if i, ok := root.Params.find(resumeParam); ok {
			root.Params = slices.Delete(root.Params, i, i+1)
		}
		return
	}
	pages := make([]Value, len(res.pages))
	for i, p := range res.pages {
		pages[i] = MapOf(Params{{"n", IntVal(int64(p.n))}, {"at", StringVal(p.at)}, {"values", MapOf(p.params)}})
	}
	root.Params.Set(resumeParam, MapOf(Params{{"pages", ListVal(pages...)}, {"replay", BoolVal(res.replay)}}))
}

// reserved reports a name the engine keeps for itself in a step's params.
func reserved(name string) bool { return strings.HasPrefix(name, ".") }

// fill gives a page the user meets again what they had answered on it.
// After Change, a page answered before counts as answered again, and the
// run goes on to the next, until the Review page. It reports whether the
// page now waits for the user.
func (x *exec) fill(id StepID, def *InteractiveStep) bool {
	if x.resume == nil {
		x.resume = x.run.loadResume()
	}
	res := x.resume
	st := x.run.s.Pool.Interactive[id]
	if def.review {
		if res.replay {
			res.replay, res.changed = false, true
		}
		return true
	}
	if len(st.Params) > 0 || len(res.pages) == 0 {
		return true
	}
	ps, ok := res.take(x.run.location(id), x.run.occurrence(id))
	if !ok {
		return true
	}
	for _, p := range ps {
		if checkParam(def, p.Name, p.Value) != nil {
			return true // not this page's answers after all
		}
	}
	st.Params = slices.Clone(ps)
	if res.replay {
		st.Done = true
		return false
	}
	return true
}
