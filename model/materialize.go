package model

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// Stale records an entity reference that changed between the snapshot and
// its materialization, and what was done about it.
type Stale struct {
	Step   StepID
	Path   string // location of the step that held the reference
	Param  string
	Old    Ref
	New    Ref
	Action StaleRule
}

// Materialize rebuilds a live session from its data: it looks up every
// step's definition in the registry, checks that the pools form exactly the
// tree those definitions describe, resolves canonical references, and
// returns a Run that resumes where the user was.
//
// The session is not modified; the Run holds its own copy. An unknown
// application, version or step, a malformed tree, or a reference that does
// not resolve is a *StepError naming the session and the step. A reference
// whose entity changed is handled by its field's StaleRule and reported by
// Run.Stale; when the rule sends the user back, the sequence advances so a
// page rendered before cannot be submitted to the step now waiting.
func (e *Engine) Materialize(ctx context.Context, s *Session) (*Run, error) {
	return e.materialize(ctx, s, false, nil)
}

// materialize is Materialize. A migrated session (settle) is first
// advanced to its next page, since the step it waited on may be gone; ents
// are entities already loaded for it.
func (e *Engine) materialize(ctx context.Context, s *Session, settle bool, ents map[entityKey]Entity) (*Run, error) {
	if _, err := ParseSessionID(string(s.ID)); err != nil {
		return nil, err
	}
	app, err := e.reg.Lookup(s.App, s.Version)
	if err != nil {
		return nil, &StepError{Session: s.ID, Err: err}
	}
	r := newRun(e, s.Clone())
	maps.Copy(r.ents, ents)
	m := &materializer{r: r, seen: map[StepID]bool{}}
	if err := m.visit(s.Root, app, app.root, "", 0); err != nil {
		return nil, err
	}
	if n := r.s.Pool.Len(); len(m.seen) != n {
		return nil, &StepError{Session: s.ID, App: app.Key(),
			Err: fmt.Errorf("%w: %d of %d steps are not reachable from the root", ErrCorruptSession, n-len(m.seen), n)}
	}
	if n := r.s.Pool.Len(); n > e.lim.MaxSteps {
		return nil, &StepError{Session: s.ID, App: app.Key(), Err: fmt.Errorf("%w: %d steps, limit %d", ErrLimit, n, e.lim.MaxSteps)}
	}
	if m.maxID >= r.s.NextID {
		return nil, &StepError{Session: s.ID, App: app.Key(),
			Err: fmt.Errorf("%w: step #%d at or above next id %d", ErrCorruptSession, m.maxID, r.s.NextID)}
	}
	if settle && !r.s.Finished() {
		x := &exec{ctx: ctx, run: r, now: r.s.Updated}
		if _, err := x.enter(r.s.Root); err != nil {
			return nil, err
		}
		for id := range r.defs {
			m.seen[id] = true
		}
	}
	if !r.s.Finished() {
		if _, _, err := r.waiting(); err != nil {
			return nil, err
		}
	}
	if err := m.resolve(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

type materializer struct {
	r     *Run
	seen  map[StepID]bool
	maxID StepID
}

func (m *materializer) corrupt(id StepID, app *Application, path, format string, args ...any) error {
	return &StepError{Session: m.r.s.ID, App: app.Key(), Step: id, Path: path,
		Err: fmt.Errorf("%w: %s", ErrCorruptSession, fmt.Sprintf(format, args...))}
}

// visit checks step id against the definition expected at its place in the
// tree, binds it, and visits its children.
func (m *materializer) visit(id StepID, app *Application, def Step, path string, parent StepID) error {
	p := &m.r.s.Pool
	if m.seen[id] {
		return m.corrupt(id, app, path, "step #%d reached twice", id)
	}
	h, kind := p.Header(id)
	if h == nil {
		return m.corrupt(id, app, path, "step #%d is missing", id)
	}
	m.seen[id] = true
	m.maxID = max(m.maxID, id)
	if h.Path != path {
		if _, ok := app.Step(h.Path); !ok {
			return &StepError{Session: m.r.s.ID, App: app.Key(), Step: id, Path: h.Path, Err: ErrUnknownStep}
		}
		return m.corrupt(id, app, h.Path, "found where %q belongs", path)
	}
	if kind != def.Kind() {
		return &StepError{Session: m.r.s.ID, App: app.Key(), Step: id, Path: path,
			Err: fmt.Errorf("%w: %s in the session, %s in the definition", ErrUnknownStep, kind, def.Kind())}
	}
	if h.Parent != parent {
		return m.corrupt(id, app, path, "parent #%d, want #%d", h.Parent, parent)
	}
	m.r.bind(id, app, def)

	switch def := def.(type) {
	case *CompositeStep:
		st := p.Composite[id]
		n := len(st.Children)
		switch def.mode {
		case sequenceMode:
			if n > len(def.steps) {
				return m.corrupt(id, app, path, "%d children, definition has %d", n, len(def.steps))
			}
		case repeatMode:
			if n > def.max {
				return m.corrupt(id, app, path, "%d iterations, at most %d", n, def.max)
			}
		case ifMode:
			if n > 1 {
				return m.corrupt(id, app, path, "%d branches taken", n)
			}
		}
		for i, ch := range st.Children {
			var want Step
			switch def.mode {
			case sequenceMode:
				want = def.steps[i]
			case repeatMode:
				want = def.steps[0]
			case ifMode:
				want = def.steps[0]
				if chh := m.r.header(ch); chh != nil && len(def.steps) > 1 && chh.Path == joinPath(path, def.steps[1].Name()) {
					want = def.steps[1]
				}
			}
			if err := m.visit(ch, app, want, joinPath(path, want.Name()), id); err != nil {
				return err
			}
			// Only the cursor, the last child, may still be running.
			chDone := m.r.header(ch).Done
			if !chDone && (st.Done || i < n-1) {
				return m.corrupt(id, app, path, "child #%d running before the cursor", ch)
			}
		}
	case *CallStep:
		st := p.Application[id]
		if st.Root == 0 {
			if st.Done {
				return m.corrupt(id, app, path, "call done without running")
			}
			return nil
		}
		if st.App != def.app.name {
			return &StepError{Session: m.r.s.ID, App: app.Key(), Step: id, Path: path,
				Err: fmt.Errorf("%w: calls %s, definition calls %s", ErrUnknownStep, quoteShort(st.App), def.app.name)}
		}
		callee, err := m.r.eng.reg.Lookup(st.App, st.Version)
		if err != nil {
			return &StepError{Session: m.r.s.ID, App: app.Key(), Step: id, Path: path, Err: err}
		}
		if err := m.visit(st.Root, callee, callee.root, "", id); err != nil {
			return err
		}
		if st.Done && !p.Composite[st.Root].Done {
			return m.corrupt(id, app, path, "call done before its application")
		}
	case *InteractiveStep:
		for _, prm := range p.Interactive[id].Params {
			if err := checkParam(def, prm.Name, prm.Value); err != nil {
				return &StepError{Session: m.r.s.ID, App: app.Key(), Step: id, Path: path, Err: err}
			}
		}
	}
	return nil
}

// checkParam checks an interactive step's value against its field, so that
// application code never sees a value of the wrong type from a snapshot.
func checkParam(def *InteractiveStep, name string, v Value) error {
	for _, f := range def.fields {
		if f.name != name {
			continue
		}
		want := map[FieldType]Kind{
			TextField: KindString, EmailField: KindString, ChoiceField: KindString,
			IntField: KindInt, DecimalField: KindDecimal, BoolField: KindBool,
			DateField: KindTime, EntityField: KindRef,
		}[f.typ]
		if v.kind != want && v.kind != KindNull {
			return fmt.Errorf("%w: field %s holds %s, want %s", ErrUnknownStep, name, v.kind, want)
		}
		return nil
	}
	return fmt.Errorf("%w: no field %s", ErrUnknownStep, quoteShort(name))
}

// resolve loads every entity the session refers to and applies the stale
// rules.
func (m *materializer) resolve(ctx context.Context) error {
	r := m.r
	type use struct {
		step  StepID
		param string
		ref   Ref
	}
	var uses []use
	ids := slices.Sorted(maps.Keys(m.seen))
	for _, id := range ids {
		h := r.header(id)
		for _, p := range h.Params {
			p.Value.walk(func(v Value) {
				if v.kind == KindRef {
					uses = append(uses, use{id, p.Name, *v.ref()})
				}
			})
		}
	}
	reloads := map[entityKey]uint64{}
	var reselect []Stale
	for _, u := range uses {
		ent, err := r.entity(ctx, u.ref)
		if err != nil {
			return r.stepError(u.step, fmt.Errorf("param %s: %w", u.param, err))
		}
		cur := ent.EntityRef()
		if cur.Version == u.ref.Version {
			continue
		}
		st := Stale{Step: u.step, Path: r.location(u.step), Param: u.param, Old: u.ref, New: cur, Action: Reload}
		if def, ok := r.defs[u.step].def.(*InteractiveStep); ok {
			for _, f := range def.fields {
				if f.name == u.param && f.stale == Reselect {
					st.Action = Reselect
				}
			}
		}
		if st.Action == Reselect {
			reselect = append(reselect, st)
		}
		reloads[entityKey{cur.Type, cur.ID}] = cur.Version
		r.stale = append(r.stale, st)
	}
	if len(reselect) > 0 {
		// The earliest step goes back; whatever followed it is discarded.
		r.rewind(reselect[0].Step)
		r.s.Seq++
	}
	if len(reloads) > 0 {
		fix := func(ref Ref) Ref {
			if v, ok := reloads[entityKey{ref.Type, ref.ID}]; ok {
				ref.Version = v
			}
			return ref
		}
		for id := range r.defs {
			h := r.header(id)
			h.Params = h.Params.mapRefs(fix)
		}
	}
	return nil
}

// rewind makes step id wait again, discarding every step that ran after it.
func (r *Run) rewind(id StepID) {
	p := &r.s.Pool
	child := id
	for cur := r.header(child).Parent; cur != 0; child, cur = cur, r.header(cur).Parent {
		if c, ok := p.Composite[cur]; ok {
			i := slices.Index(c.Children, child)
			for _, later := range c.Children[i+1:] {
				r.drop(later)
			}
			c.Children = c.Children[:i+1]
			c.Done = false
		}
		if a, ok := p.Application[cur]; ok {
			a.Done = false
		}
	}
	r.header(id).Done = false
}

// drop deletes a step and everything below it.
func (r *Run) drop(id StepID) {
	p := &r.s.Pool
	if c, ok := p.Composite[id]; ok {
		for _, ch := range c.Children {
			r.drop(ch)
		}
	}
	if a, ok := p.Application[id]; ok && a.Root != 0 {
		r.drop(a.Root)
	}
	p.delete(id)
	delete(r.defs, id)
}
