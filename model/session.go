package model

import (
	"maps"
	"slices"
	"time"
)

// Session is one browser's state, as data: what a snapshot carries and what
// a backup holds. It has no pointers to definitions; Materialize binds it to
// a registry and returns a Run.
//
// The steps live in the global Pool, four tables keyed by StepID. The step
// tree is implicit: each step names its Parent, each composite its Children,
// each application step the Root of the application it called.
type Session struct {
	ID      SessionID
	Epoch   uint64    // epoch of the node that wrote this version
	Seq     uint64    // interaction sequence: 0 before the first interaction
	Node    string    // node that wrote this version
	Created time.Time // first interaction
	Updated time.Time // last interaction

	App     string // the application the session started
	Version int
	Root    StepID // the application's root sequence
	NextID  StepID // the next step id to hand out

	Pool Pool
}

// Pool holds a session's step states by kind, keyed by step id.
type Pool struct {
	Composite   map[StepID]*CompositeState
	Simple      map[StepID]*SimpleState
	Interactive map[StepID]*InteractiveState
	Application map[StepID]*ApplicationState
}

// StepState is what every step instance holds.
type StepState struct {
	// Path is the step's definition within its application: "drivers/driver".
	Path string
	// Parent is the step that started this one; 0 for the session's root.
	// A called application's root has the application step as parent.
	Parent StepID
	// Done is set when the step has finished.
	Done bool
	// Params are the step's named values: an interactive step's fields, a
	// simple step's results, a called application's arguments (on its root).
	Params Params
}

// CompositeState is a running composite step. Its cursor is its last child:
// the children before it are done, and a new one starts when it finishes.
type CompositeState struct {
	StepState
	Children []StepID
}

// SimpleState is a simple step instance.
type SimpleState struct{ StepState }

// InteractiveState is a page: waiting while not Done, its Params the answers.
type InteractiveState struct{ StepState }

// ApplicationState is a call of another application.
type ApplicationState struct {
	StepState
	App     string // called application and version
	Version int
	Root    StepID // the callee's root sequence; 0 until the call starts
}

// NewPool returns an empty pool.
func NewPool() Pool {
	return Pool{
		Composite:   map[StepID]*CompositeState{},
		Simple:      map[StepID]*SimpleState{},
		Interactive: map[StepID]*InteractiveState{},
		Application: map[StepID]*ApplicationState{},
	}
}

// Len returns the number of step instances.
func (p *Pool) Len() int {
	return len(p.Composite) + len(p.Simple) + len(p.Interactive) + len(p.Application)
}

// Header returns the common state of a step and its kind, or nil.
func (p *Pool) Header(id StepID) (*StepState, StepKind) {
	if s, ok := p.Composite[id]; ok {
		return &s.StepState, CompositeKind
	}
	if s, ok := p.Simple[id]; ok {
		return &s.StepState, SimpleKind
	}
	if s, ok := p.Interactive[id]; ok {
		return &s.StepState, InteractiveKind
	}
	if s, ok := p.Application[id]; ok {
		return &s.StepState, ApplicationKind
	}
	return nil, 0
}

// delete removes a step.
func (p *Pool) delete(id StepID) {
	delete(p.Composite, id)
	delete(p.Simple, id)
	delete(p.Interactive, id)
	delete(p.Application, id)
}

// Finished reports whether the session's application has finished.
func (s *Session) Finished() bool {
	r, ok := s.Pool.Composite[s.Root]
	return ok && r.Done
}

// Apps returns the applications the session runs, "name@version", sorted:
// the envelope's application versions.
func (s *Session) Apps() []string {
	set := map[string]bool{key(s.App, s.Version): true}
	for _, a := range s.Pool.Application {
		if a.Root != 0 {
			set[key(a.App, a.Version)] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func key(name string, version int) string { return AppKey(name, version) }

// Clone returns a deep copy. Values are immutable, so they are shared.
func (s *Session) Clone() *Session {
	c := *s
	c.Pool = Pool{
		Composite:   make(map[StepID]*CompositeState, len(s.Pool.Composite)),
		Simple:      make(map[StepID]*SimpleState, len(s.Pool.Simple)),
		Interactive: make(map[StepID]*InteractiveState, len(s.Pool.Interactive)),
		Application: make(map[StepID]*ApplicationState, len(s.Pool.Application)),
	}
	for id, x := range s.Pool.Composite {
		y := *x
		y.StepState = x.StepState.clone()
		y.Children = slices.Clone(x.Children)
		c.Pool.Composite[id] = &y
	}
	for id, x := range s.Pool.Simple {
		c.Pool.Simple[id] = &SimpleState{x.StepState.clone()}
	}
	for id, x := range s.Pool.Interactive {
		c.Pool.Interactive[id] = &InteractiveState{x.StepState.clone()}
	}
	for id, x := range s.Pool.Application {
		y := *x
		y.StepState = x.StepState.clone()
		c.Pool.Application[id] = &y
	}
	return &c
}

func (h StepState) clone() StepState {
	h.Params = slices.Clone(h.Params)
	return h
}

// Equal reports whether two sessions hold the same data.
func (s *Session) Equal(o *Session) bool {
	if s.ID != o.ID || s.Epoch != o.Epoch || s.Seq != o.Seq || s.Node != o.Node ||
		!s.Created.Equal(o.Created) || !s.Updated.Equal(o.Updated) ||
		s.App != o.App || s.Version != o.Version || s.Root != o.Root || s.NextID != o.NextID {
		return false
	}
	return maps.EqualFunc(s.Pool.Composite, o.Pool.Composite, func(a, b *CompositeState) bool {
		return a.StepState.equal(&b.StepState) && slices.Equal(a.Children, b.Children)
	}) && maps.EqualFunc(s.Pool.Simple, o.Pool.Simple, func(a, b *SimpleState) bool {
		return a.StepState.equal(&b.StepState)
	}) && maps.EqualFunc(s.Pool.Interactive, o.Pool.Interactive, func(a, b *InteractiveState) bool {
		return a.StepState.equal(&b.StepState)
	}) && maps.EqualFunc(s.Pool.Application, o.Pool.Application, func(a, b *ApplicationState) bool {
		return a.StepState.equal(&b.StepState) && a.App == b.App && a.Version == b.Version && a.Root == b.Root
	})
}

func (h *StepState) equal(o *StepState) bool {
	return h.Path == o.Path && h.Parent == o.Parent && h.Done == o.Done &&
		h.Params.Equal(o.Params)
}
