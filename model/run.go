package model

import (
	"fmt"
	"maps"
)

// Run is a live session: its data bound to the definitions that drive it and
// to the entities its canonical values refer to. Engine.Start and
// Engine.Materialize make Runs; Engine.Submit makes a new Run from an old one.
//
// A Run is not safe for concurrent use: a node handles one session's requests
// one at a time.
type Run struct {
	eng   *Engine
	s     *Session
	defs  map[StepID]binding
	ents  map[entityKey]Entity
	stale []Stale
}

type binding struct {
	app *Application
	def Step
}

type entityKey struct{ typ, id string }

func newRun(e *Engine, s *Session) *Run {
	return &Run{eng: e, s: s, defs: map[StepID]binding{}, ents: map[entityKey]Entity{}}
}

func (r *Run) bind(id StepID, app *Application, def Step) { r.defs[id] = binding{app, def} }

func (r *Run) clone() *Run {
	return &Run{eng: r.eng, s: r.s.Clone(), defs: maps.Clone(r.defs), ents: maps.Clone(r.ents)}
}

// Session returns the run's data, for encoding. The caller must not modify
// it: Runs are replaced, never changed, once handed out.
func (r *Run) Session() *Session { return r.s }

// ID returns the session's id.
func (r *Run) ID() SessionID { return r.s.ID }

// Seq returns the session's interaction sequence.
func (r *Run) Seq() uint64 { return r.s.Seq }

// Finished reports whether the application has finished.
func (r *Run) Finished() bool { return r.s.Finished() }

// Stale lists the entity references Materialize found changed, and what it
// did about each.
func (r *Run) Stale() []Stale { return r.stale }

// Values returns everything collected so far: the root application's value,
// a map from step name to the step's value.
func (r *Run) Values() Value { return r.value(r.s.Root) }

// Restamp returns a copy of the run owned by another node and epoch: what a
// promoted backup publishes a session it took over as. The sequence is
// unchanged: no interaction happened.
func (r *Run) Restamp(node string, epoch uint64) *Run {
	n := r.clone()
	n.s.Node, n.s.Epoch = node, epoch
	return n
}

// header returns the common state of a step.
func (r *Run) header(id StepID) *StepState {
	h, _ := r.s.Pool.Header(id)
	return h
}

// waiting returns the interactive step the session waits on.
func (r *Run) waiting() (StepID, *InteractiveStep, error) {
	p := &r.s.Pool
	id := r.s.Root
	for range p.Len() + 1 {
		switch def := r.defs[id].def.(type) {
		case *CompositeStep:
			st := p.Composite[id]
			if st.Done || len(st.Children) == 0 {
				if id == r.s.Root {
					return 0, nil, r.stepError(id, ErrFinished)
				}
				return 0, nil, r.stepError(id, fmt.Errorf("%w: %w below a running step", ErrCorruptSession, errNotWaiting))
			}
			id = st.Children[len(st.Children)-1]
		case *CallStep:
			id = p.Application[id].Root
		case *InteractiveStep:
			if p.Interactive[id].Done {
				return 0, nil, r.stepError(id, fmt.Errorf("%w: %w", ErrCorruptSession, errNotWaiting))
			}
			return id, def, nil
		default:
			return 0, nil, r.stepError(id, fmt.Errorf("%w: %w", ErrCorruptSession, errNotWaiting))
		}
	}
	return 0, nil, r.stepError(id, fmt.Errorf("%w: cycle", ErrCorruptSession))
}

// location is a step's path as a user of the whole session sees it: through
// calls, "payment/card" for step "card" of the application step "payment".
func (r *Run) location(id StepID) string {
	loc := ""
	for range r.s.Pool.Len() + 1 {
		h := r.header(id)
		if h == nil {
			return loc
		}
		loc = joinPath(h.Path, loc)
		// Climb to this application's root, then to the step that called it.
		for h.Parent != 0 {
			if _, isCall := r.s.Pool.Application[h.Parent]; isCall {
				break
			}
			id = h.Parent
			h = r.header(id)
		}
		if h.Parent == 0 {
			return loc
		}
		id = h.Parent
	}
	return loc
}

// callDepth counts the application steps above and including id.
func (r *Run) callDepth(id StepID) int {
	d := 0
	for range r.s.Pool.Len() + 1 {
		if _, ok := r.s.Pool.Application[id]; ok {
			d++
		}
		h := r.header(id)
		if h == nil || h.Parent == 0 {
			break
		}
		id = h.Parent
	}
	return d
}

func (r *Run) stepError(id StepID, err error) *StepError {
	e := &StepError{Session: r.s.ID, Step: id, Err: err}
	if b, ok := r.defs[id]; ok {
		e.App = b.app.Key()
	}
	e.Path = r.location(id)
	return e
}
