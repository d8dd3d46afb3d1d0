package model

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limits bound what one session may grow to, so no user (and no hostile
// snapshot) can make a session unbounded.
type Limits struct {
	// MaxSteps is the most step instances a session may hold.
	MaxSteps int
	// MaxCallDepth is how deeply applications may call applications.
	MaxCallDepth int
}

// Default limits.
const (
	DefaultMaxSteps     = 4096
	DefaultMaxCallDepth = 8
)

// Engine advances sessions: it starts applications, applies input and
// renders pages. It is pure apart from what its Resolver and the
// applications' simple steps do; time and ids come in with each call, so a
// run can be replayed exactly. An Engine is safe for concurrent use on
// different Runs.
type Engine struct {
	reg *Registry
	res Resolver
	lim Limits
}

// NewEngine returns an engine over a registry and an entity resolver (which
// may be nil for applications without entities).
func NewEngine(reg *Registry, res Resolver) *Engine {
	return &Engine{reg: reg, res: res, lim: Limits{MaxSteps: DefaultMaxSteps, MaxCallDepth: DefaultMaxCallDepth}}
}

// WithLimits returns a copy of the engine with other limits; zero fields keep
// the defaults.
func (e *Engine) WithLimits(l Limits) *Engine {
	c := *e
	if l.MaxSteps > 0 {
		c.lim.MaxSteps = l.MaxSteps
	}
	if l.MaxCallDepth > 0 {
		c.lim.MaxCallDepth = l.MaxCallDepth
	}
	return &c
}

// Registry returns the engine's registry.
func (e *Engine) Registry() *Registry { return e.reg }

// Begin says which application a new session runs, and stamps it.
type Begin struct {
	App     string
	Version int // 0: the latest registered
	Session SessionID
	Now     time.Time
	Node    string
	Epoch   uint64
}

// Input is one interaction: the form the user sent from a page rendered at
// interaction Seq, and the time and owner to stamp the session with.
type Input struct {
	Seq    uint64
	Values map[string][]string // as url.Values
	Now    time.Time
	Node   string
	Epoch  uint64
}

// Start begins a session: it runs the application until its first page
// waits (or it finishes). The session's sequence is 0: it becomes 1 at the
// first interaction.
func (e *Engine) Start(ctx context.Context, b Begin) (*Run, error) {
	var app *Application
	var err error
	if b.Version == 0 {
		app, err = e.reg.Latest(b.App)
	} else {
		app, err = e.reg.Lookup(b.App, b.Version)
	}
	if err != nil {
		return nil, &StepError{Session: b.Session, Err: err}
	}
	now := b.Now.UTC()
	s := &Session{
		ID: b.Session, Epoch: b.Epoch, Node: b.Node, Created: now, Updated: now,
		App: app.name, Version: app.version, NextID: 1, Pool: NewPool(),
	}
	r := newRun(e, s)
	x := &exec{ctx: ctx, run: r, now: now}
	s.Root = x.newStep(app, app.root, "", 0)
	if _, err := x.enter(s.Root); err != nil {
		return nil, err
	}
	return r, nil
}

// Submit applies one interaction to the page that is waiting and advances the
// session to its next page. It returns a new Run and leaves r as it was, so a
// caller can keep r until the new state is safely replicated.
//
// Errors: ErrStaleInteraction when in.Seq is not the session's sequence (the
// caller shows the current page), ErrFinished, and *InvalidInputError (the
// caller shows the page again with its messages). All are *StepErrors naming
// the session, except *InvalidInputError which names it itself.
func (e *Engine) Submit(ctx context.Context, r *Run, in Input) (*Run, error) {
	wid, step, err := r.accept(in)
	if err != nil {
		return nil, err
	}
	now := in.Now.UTC()
	values, entities, bad := e.parse(ctx, r, wid, step, in.Values, now)
	if bad != nil {
		return nil, bad
	}

	n := r.clone()
	for k, v := range entities {
		n.ents[k] = v
	}
	w := n.s.Pool.Interactive[wid]
	for _, f := range step.fields {
		if v, ok := values[f.name]; ok {
			w.Params.Set(f.name, v)
		}
	}
	w.Done = true
	n.s.Seq++
	n.s.Updated = now
	n.s.Node, n.s.Epoch = in.Node, in.Epoch
	x := &exec{ctx: ctx, run: n, now: now}
	if _, err := x.enter(n.s.Root); err != nil {
		return nil, err
	}
	x.saveResume()
	return n, nil
}

// parse validates a submission against the waiting step's fields.
func (e *Engine) parse(ctx context.Context, r *Run, id StepID, step *InteractiveStep, form map[string][]string, now time.Time) (map[string]Value, map[entityKey]Entity, *InvalidInputError) {
	values := make(map[string]Value, len(step.fields))
	var entities map[entityKey]Entity
	var bad *InvalidInputError
	fail := func(f *Field, raw, msg string) {
		if bad == nil {
			bad = &InvalidInputError{Session: r.s.ID, Step: r.location(id), Fields: map[string]string{}, Input: map[string]string{}}
		}
		bad.Fields[f.name] = msg
		keepInput(bad.Input, f, form)
		bad.Input[f.name] = raw
	}
	for _, f := range step.fields {
		raw := ""
		if f.typ == DateField {
			raw, _ = dateRaw(form, f.name)
		} else if vs := form[f.name]; len(vs) > 0 {
			raw = vs[0]
		}
		v, msg := f.parse(raw, now)
		if msg != "" {
			fail(f, raw, msg)
			continue
		}
		if f.typ == EntityField && !v.IsNull() {
			ent, err := e.resolve(ctx, Ref{Type: f.entity, ID: v.Str()})
			if err != nil {
				fail(f, raw, "Choose one of the options.")
				continue
			}
			if entities == nil {
				entities = map[entityKey]Entity{}
			}
			ref := ent.EntityRef()
			entities[entityKey{ref.Type, ref.ID}] = ent
			v = RefVal(ref)
		}
		values[f.name] = v
	}
	if bad != nil {
		for _, f := range step.fields {
			if _, ok := bad.Fields[f.name]; !ok {
				keepInput(bad.Input, f, form)
			}
		}
		return nil, nil, bad
	}
	return values, entities, nil
}

// keepInput records what the user sent for field f, to show it again on a
// refused page: its value, or a date's day, month and year.
func keepInput(into map[string]string, f *Field, form map[string][]string) {
	keys := []string{f.name}
	if f.typ == DateField {
		keys = append(keys, f.name+DaySuffix, f.name+MonthSuffix, f.name+YearSuffix)
	}
	for _, k := range keys {
		if vs := form[k]; len(vs) > 0 && len(vs[0]) <= MaxInputLen {
			into[k] = vs[0]
		}
	}
}

func (e *Engine) resolve(ctx context.Context, ref Ref) (Entity, error) {
	if e.res == nil {
		return nil, fmt.Errorf("%s: no resolver: %w", ref, ErrUnresolved)
	}
	ent, err := e.res.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if got := ent.EntityRef(); !got.sameEntity(ref) {
		return nil, fmt.Errorf("%s: resolver returned %s: %w", ref, got, ErrUnresolved)
	}
	return ent, nil
}

// exec advances one run: it creates step instances and runs simple steps.
type exec struct {
	ctx    context.Context
	run    *Run
	now    time.Time
	resume *resume // what going back discarded; read when first needed
}

func (x *exec) fail(id StepID, err error) error {
	return x.run.stepError(id, err)
}

// newStep creates an instance of def at path under parent.
func (x *exec) newStep(app *Application, def Step, path string, parent StepID) StepID {
	s := x.run.s
	id := s.NextID
	s.NextID++
	h := StepState{Path: path, Parent: parent}
	switch def.(type) {
	case *CompositeStep:
		s.Pool.Composite[id] = &CompositeState{StepState: h}
	case *SimpleStep:
		s.Pool.Simple[id] = &SimpleState{h}
	case *InteractiveStep:
		s.Pool.Interactive[id] = &InteractiveState{h}
	case *CallStep:
		s.Pool.Application[id] = &ApplicationState{StepState: h}
	}
	x.run.bind(id, app, def)
	return id
}

// enter makes step id progress as far as it can without the user. It reports
// whether an interactive step below it is now waiting.
func (x *exec) enter(id StepID) (waiting bool, err error) {
	p := &x.run.s.Pool
	if p.Len() > x.run.eng.lim.MaxSteps {
		return false, x.fail(id, fmt.Errorf("%w: more than %d steps", ErrLimit, x.run.eng.lim.MaxSteps))
	}
	b := x.run.defs[id]
	switch def := b.def.(type) {
	case *InteractiveStep:
		if p.Interactive[id].Done {
			return false, nil
		}
		return x.fill(id, def), nil

	case *SimpleStep:
		st := p.Simple[id]
		if st.Done {
			return false, nil
		}
		if err := x.call(id, func() error { return def.fn(&stepContext{Context: x.ctx, x: x, id: id}, x.state(id, true)) }); err != nil {
			return false, x.fail(id, fmt.Errorf("%w: %w", ErrStepFailed, err))
		}
		st.Done = true
		return false, nil

	case *CallStep:
		st := p.Application[id]
		if st.Done {
			return false, nil
		}
		if st.Root == 0 {
			if depth := x.run.callDepth(id); depth >= x.run.eng.lim.MaxCallDepth {
				return false, x.fail(id, fmt.Errorf("%w: calls nest deeper than %d", ErrLimit, depth))
			}
			args := map[string]Value{}
			scope := x.state(st.Parent, false)
			for _, a := range def.args {
				args[a.param] = scope.Get(a.path)
			}
			st.App, st.Version = def.app.name, def.app.version
			st.Root = x.newStep(def.app, def.app.root, "", id)
			p.Composite[st.Root].Params = ParamsOf(args)
		}
		w, err := x.enter(st.Root)
		if err != nil || w {
			return w, err
		}
		st.Done = true
		return false, nil

	case *CompositeStep:
		st := p.Composite[id]
		for !st.Done {
			if n := len(st.Children); n > 0 {
				w, err := x.enter(st.Children[n-1])
				if err != nil || w {
					return w, err
				}
			}
			next, err := x.next(id, st, def)
			if err != nil {
				return false, err
			}
			if next == nil {
				st.Done = true
				break
			}
			path := joinPath(st.Path, next.Name())
			st.Children = append(st.Children, x.newStep(b.app, next, path, id))
		}
		return false, nil
	}
	return false, x.fail(id, fmt.Errorf("%w: no definition bound", ErrCorruptSession))
}

// next returns the child a composite starts once its current child is done,
// or nil when the composite is done.
func (x *exec) next(id StepID, st *CompositeState, def *CompositeStep) (Step, error) {
	n := len(st.Children)
	switch def.mode {
	case sequenceMode:
		if n < len(def.steps) {
			return def.steps[n], nil
		}
	case repeatMode:
		if n == 0 {
			return def.steps[0], nil
		}
		if n >= def.max {
			return nil, nil
		}
		var again bool
		err := x.call(id, func() error { again = def.cond(x.state(st.Children[n-1], false)); return nil })
		if err != nil {
			return nil, x.fail(id, fmt.Errorf("%w: condition: %w", ErrStepFailed, err))
		}
		if again {
			return def.steps[0], nil
		}
	case ifMode:
		if n > 0 {
			return nil, nil
		}
		var yes bool
		err := x.call(id, func() error { yes = def.cond(x.state(id, false)); return nil })
		if err != nil {
			return nil, x.fail(id, fmt.Errorf("%w: condition: %w", ErrStepFailed, err))
		}
		if yes {
			return def.steps[0], nil
		}
		if len(def.steps) > 1 {
			return def.steps[1], nil
		}
	}
	return nil, nil
}

// call runs application code, turning a panic into an error: a bug in one
// application's step must not take down a node serving other sessions.
func (x *exec) call(id StepID, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// stepContext is the Context a simple step runs with.
type stepContext struct {
	context.Context
	x  *exec
	id StepID
}

func (c *stepContext) Now() time.Time     { return c.x.now }
func (c *stepContext) Session() SessionID { return c.x.run.s.ID }
func (c *stepContext) Key(name string) string {
	return fmt.Sprintf("%s-%d-%s", c.x.run.s.ID, c.id, name)
}

// Context is what a simple step's code receives: the request's context, and
// the inputs that make a run replayable.
type Context interface {
	context.Context
	// Now is the time of the interaction being applied.
	Now() time.Time
	// Session is the session's id.
	Session() SessionID
	// Key returns an idempotency key for a side effect named name: the same
	// for this step instance whenever it runs, on whatever node, so a step
	// re-run after a failover does not charge a card twice.
	Key(name string) string
}

var errNotWaiting = errors.New("no page is waiting")
