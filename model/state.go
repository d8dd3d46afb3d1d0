package model

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// State is the view of a session that a simple step or a condition gets.
//
// Get resolves a dotted path the way a programming language resolves a name:
// the first part is looked up from the step outwards, first in the step's
// own values, then among the steps of each enclosing composite, up to the
// root of the application (a called application does not see its caller; it
// sees the arguments passed to it with Call.With). The rest of the path walks
// into the value found: "applicant.name", "drivers.0.years", "payment.card".
//
// What a step's value is: an interactive step's answers and a simple step's
// results are a map of its values; a sequence is a map from child name to
// child value; a repeat is the list of its iterations; a call is the callee's
// values.
type State struct {
	run   *Run
	ctx   context.Context
	scope StepID
	write bool // a simple step may Set its own values
}

func (x *exec) state(scope StepID, write bool) *State {
	return &State{run: x.run, ctx: x.ctx, scope: scope, write: write}
}

// Get returns the value at path, or null.
func (st *State) Get(path string) Value {
	v, _ := st.Lookup(path)
	return v
}

// Lookup returns the value at path and whether it exists.
func (st *State) Lookup(path string) (Value, bool) {
	parts := strings.Split(path, ".")
	v, ok := st.run.lookup(st.scope, parts[0])
	for _, p := range parts[1:] {
		if !ok {
			break
		}
		switch v.Kind() {
		case KindMap:
			v, ok = v.entries().Get(p)
		case KindList:
			i, err := strconv.Atoi(p)
			ok = err == nil && i >= 0 && i < len(v.list())
			if ok {
				v = v.list()[i]
			}
		default:
			ok = false
		}
	}
	if !ok {
		return Null, false
	}
	return v, true
}

// Set sets a value of the simple step that is running.
func (st *State) Set(name string, v Value) {
	if !st.write {
		panic("model: State.Set outside a simple step")
	}
	st.run.header(st.scope).Params.Set(name, v)
}

// SetEntity stores an entity canonically, as a reference, and keeps the
// entity itself for this run.
func (st *State) SetEntity(name string, e Entity) {
	ref := e.EntityRef()
	st.Set(name, RefVal(ref))
	st.run.ents[entityKey{ref.Type, ref.ID}] = e
}

// Entity returns the entity the canonical value at path refers to.
func (st *State) Entity(path string) (Entity, error) {
	v := st.Get(path)
	ref, ok := v.Ref()
	if !ok {
		return nil, fmt.Errorf("%s is %s, not an entity reference", path, v.Kind())
	}
	return st.run.entity(st.ctx, ref)
}

// entity returns the live entity of a reference, resolving it once per run.
func (r *Run) entity(ctx context.Context, ref Ref) (Entity, error) {
	k := entityKey{ref.Type, ref.ID}
	if e, ok := r.ents[k]; ok {
		return e, nil
	}
	e, err := r.eng.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	r.ents[k] = e
	return e, nil
}

// lookup resolves one name from scope outwards.
func (r *Run) lookup(scope StepID, name string) (Value, bool) {
	id := scope
	for range r.s.Pool.Len() + 1 {
		h := r.header(id)
		if h == nil {
			break
		}
		if v, ok := h.Params.Get(name); ok {
			return v, true
		}
		if c, ok := r.s.Pool.Composite[id]; ok {
			for i := len(c.Children) - 1; i >= 0; i-- {
				if ch := r.header(c.Children[i]); ch != nil && lastName(ch.Path) == name {
					return r.value(c.Children[i]), true
				}
			}
		}
		if h.Parent == 0 {
			break
		}
		if _, isCall := r.s.Pool.Application[h.Parent]; isCall {
			break // a callee does not see its caller
		}
		id = h.Parent
	}
	return Null, false
}

func lastName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// value returns a step's value (see State).
func (r *Run) value(id StepID) Value {
	return r.valueDepth(id, 0)
}

func (r *Run) valueDepth(id StepID, depth int) Value {
	p := &r.s.Pool
	if depth > p.Len() {
		return Null // a cycle; Materialize refuses such sessions
	}
	if c, ok := p.Composite[id]; ok {
		if b, ok := r.defs[id]; ok {
			if def, ok := b.def.(*CompositeStep); ok && def.mode == repeatMode {
				out := make([]Value, len(c.Children))
				for i, ch := range c.Children {
					out[i] = r.valueDepth(ch, depth+1)
				}
				return Value{kind: KindList, x: out}
			}
		}
		m := slices.DeleteFunc(slices.Clone(c.Params), func(p Param) bool { return reserved(p.Name) })
		for _, ch := range c.Children {
			if h := r.header(ch); h != nil {
				m.Set(lastName(h.Path), r.valueDepth(ch, depth+1))
			}
		}
		return Value{kind: KindMap, x: m}
	}
	if a, ok := p.Application[id]; ok {
		if a.Root == 0 {
			return Null
		}
		return r.valueDepth(a.Root, depth+1)
	}
	if h := r.header(id); h != nil {
		return h.Params.Map()
	}
	return Null
}
