package model

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// MigrateFunc moves one running instance of an application from one
// version's state to another's, in place. Like a simple step it must be
// deterministic (no clock, no randomness, no I/O), so that every node
// migrates a session the same way and a migration can be replayed and
// tested. It sees only the instance's own steps: an application the
// instance calls is an instance of its own, migrated by its own migrations.
//
// It edits step values through Steps (their Params), and the shape of the
// tree with Rename, Remove and Insert, which keep it a tree. Whatever it
// does, the session it leaves must fit the target version's definition:
// Engine.Migrate checks that by materializing it, and refuses the
// migration (ErrMigration) when it does not.
type MigrateFunc func(in *Instance) error

// Migration is a registered migration (Registry.Migrate): how a running
// instance of application App moves from version From to version To.
type Migration struct {
	App      string
	From, To int
	fn       MigrateFunc
}

// Upgrade says what Engine.Migrate did to one application instance.
type Upgrade struct {
	// Call is the application step that runs the instance; 0 for the
	// session's own application.
	Call     StepID
	App      string
	From, To int
}

// String returns "name@from->to", for logs and metrics.
func (u Upgrade) String() string { return fmt.Sprintf("%s@%d->%d", u.App, u.From, u.To) }

// Instance is one running instance of an application in a session, as a
// migration reshapes it: the step states of that application, found by
// their paths in its definition ("drivers/driver"). The ids of steps, the
// session's sequence and everything outside the instance are not its
// business.
type Instance struct {
	s        *Session
	root     StepID
	app      string
	from, to int
	def      *Application // the version migrated to
}

// Session returns the id of the session the instance belongs to.
func (in *Instance) Session() SessionID { return in.s.ID }

// App returns the application's name.
func (in *Instance) App() string { return in.app }

// From returns the version the instance is being migrated from.
func (in *Instance) From() int { return in.from }

// To returns the version the instance is being migrated to.
func (in *Instance) To() int { return in.to }

// ids returns the instance's steps, in tree order (a repeat's iterations in
// order). The steps of called applications are not the instance's; the
// application steps that call them are.
func (in *Instance) ids() []StepID {
	var out []StepID
	seen := map[StepID]bool{}
	var visit func(id StepID)
	visit = func(id StepID) {
		if seen[id] {
			return
		}
		if h, _ := in.s.Pool.Header(id); h == nil {
			return
		}
		seen[id] = true
		out = append(out, id)
		if c, ok := in.s.Pool.Composite[id]; ok {
			for _, ch := range c.Children {
				visit(ch)
			}
		}
	}
	visit(in.root)
	return out
}

// at returns the instance's steps at path, in tree order.
func (in *Instance) at(path string) []StepID {
	var out []StepID
	for _, id := range in.ids() {
		if h, _ := in.s.Pool.Header(id); h.Path == path {
			out = append(out, id)
		}
	}
	return out
}

// Steps returns the states of the instance's steps at path, in tree order:
// one for a step that ran once, one per iteration for a step in a repeat,
// none for a step the session has not reached. A migration changes their
// Params (Set, Delete); their other fields are the tree's, which Rename,
// Remove and Insert change.
func (in *Instance) Steps(path string) []*StepState {
	var out []*StepState
	for _, id := range in.at(path) {
		h, _ := in.s.Pool.Header(id)
		out = append(out, h)
	}
	return out
}

// Rename moves the steps at path from, and the steps below them, to path
// to: what a step renamed, or moved within its parent, needs. Their values
// go with them. It returns how many steps it renamed.
func (in *Instance) Rename(from, to string) int {
	n := 0
	for _, id := range in.ids() {
		h, _ := in.s.Pool.Header(id)
		if h.Path == from || strings.HasPrefix(h.Path, from+"/") {
			h.Path = to + h.Path[len(from):]
			n++
		}
	}
	return n
}

// Remove deletes the steps at path, everything below them (applications
// they called included) and their places in their parents: what a step the
// new version no longer has needs. When the step removed was the one
// waiting, the session goes on to the next one once migrated, as if it had
// been answered. The instance's root (path "") cannot be removed. It
// returns how many steps it removed at path.
func (in *Instance) Remove(path string) int {
	if path == "" {
		return 0
	}
	n := 0
	for _, id := range in.at(path) {
		h, _ := in.s.Pool.Header(id)
		if c, ok := in.s.Pool.Composite[h.Parent]; ok {
			c.Children = slices.DeleteFunc(c.Children, func(ch StepID) bool { return ch == id })
		}
		dropData(&in.s.Pool, id)
		n++
	}
	return n
}

// dropData deletes a step and everything below it from a pool.
func dropData(p *Pool, id StepID) {
	if c, ok := p.Composite[id]; ok {
		for _, ch := range c.Children {
			dropData(p, ch)
		}
	}
	if a, ok := p.Application[id]; ok && a.Root != 0 {
		dropData(p, a.Root)
	}
	p.delete(id)
}

// Insert adds the step at path of the new version, a page or a simple
// step in a sequence, as done with the values params, wherever the
// session has already gone past its place: what a step the new version
// adds before where a user is needs, so that the sequence holds what its
// definition says. Where the session has not reached that place yet,
// nothing is added: the step runs when the user gets there. It returns how
// many steps it added.
func (in *Instance) Insert(path string, params Params) (int, error) {
	def, ok := in.def.Step(path)
	if !ok || path == "" {
		return 0, fmt.Errorf("insert %q: %s has no such step", path, in.def.Key())
	}
	if k := def.Kind(); k != InteractiveKind && k != SimpleKind {
		return 0, fmt.Errorf("insert %q: a %s step; only pages and simple steps can be inserted", path, k)
	}
	parentPath, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parentPath, name = path[:i], path[i+1:]
	}
	parent, _ := in.def.Step(parentPath)
	seq, ok := parent.(*CompositeStep)
	if !ok || seq.mode != sequenceMode {
		return 0, fmt.Errorf("insert %q: its parent is not a sequence", path)
	}
	index := func(stepName string) int {
		return slices.IndexFunc(seq.steps, func(s Step) bool { return s.Name() == stepName })
	}
	k := index(name)
	var vals Params
	for _, p := range params {
		vals.Set(p.Name, p.Value)
	}
	n := 0
	for _, pid := range in.at(parentPath) {
		c, ok := in.s.Pool.Composite[pid]
		if !ok {
			continue
		}
		pos, passed, exists := 0, c.Done, false
		for i, ch := range c.Children {
			h, _ := in.s.Pool.Header(ch)
			if h == nil {
				continue
			}
			j := index(h.Path[strings.LastIndexByte(h.Path, '/')+1:])
			switch {
			case j == k:
				exists = true
			case j >= 0 && j < k:
				pos = i + 1
			case j > k:
				passed = true
			}
		}
		if exists || !passed {
			continue
		}
		id := in.s.NextID
		in.s.NextID++
		h := StepState{Path: path, Parent: pid, Done: true, Params: slices.Clone(vals)}
		if def.Kind() == InteractiveKind {
			in.s.Pool.Interactive[id] = &InteractiveState{h}
		} else {
			in.s.Pool.Simple[id] = &SimpleState{h}
		}
		c.Children = slices.Insert(c.Children, pos, id)
		n++
	}
	return n, nil
}

// run calls fn, turning a panic into an error as a simple step's is.
func (in *Instance) run(fn MigrateFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(in)
}

// planned is one application instance Engine.Migrate moves.
type planned struct {
	call, root StepID
	app        string
	from, to   int
	chain      []*Migration
}

// plan returns the instances of s to move, the session's own application
// first, then the called ones by step id.
func (e *Engine) plan(s *Session, ok func(name string, version int) bool) []planned {
	var out []planned
	add := func(call, root StepID, app string, version int) {
		to := e.reg.Target(app, version, ok)
		if to == version {
			return
		}
		if chain := e.reg.chain(app, version, to); chain != nil {
			out = append(out, planned{call: call, root: root, app: app, from: version, to: to, chain: chain})
		}
	}
	add(0, s.Root, s.App, s.Version)
	calls := make([]StepID, 0, len(s.Pool.Application))
	for id, a := range s.Pool.Application {
		if a.Root != 0 {
			calls = append(calls, id)
		}
	}
	slices.Sort(calls)
	for _, id := range calls {
		a := s.Pool.Application[id]
		add(id, a.Root, a.App, a.Version)
	}
	return out
}

// Migrate moves every application instance of a run's session (its own
// application and those it called) to the version the registry's Target
// chooses with ok, through the registered migrations, and returns a run of
// the migrated session, materialized against the new versions, with what
// it did. When nothing is to move it returns r itself and no upgrades.
//
// The session keeps its id, sequence, epoch, node and times: a migration
// is no interaction, and a node publishes the migrated session as the
// snapshot of the interaction it applied before. If the step that was
// waiting is gone, the session goes on (simple steps run, stamped with the
// time of the session's last interaction) to the next page.
//
// r is not modified. An error wraps ErrMigration and names the session and
// the application: a migration that returned an error or panicked, or a
// migrated session that does not fit the target versions.
func (e *Engine) Migrate(ctx context.Context, r *Run, ok func(name string, version int) bool) (*Run, []Upgrade, error) {
	plan := e.plan(r.s, ok)
	if len(plan) == 0 {
		return r, nil, nil
	}
	s := r.s.Clone()
	var ups []Upgrade
	for _, p := range plan {
		if p.call != 0 {
			// A caller's migration may have removed the step that called it.
			if a, ok := s.Pool.Application[p.call]; !ok || a.Root != p.root {
				continue
			}
		}
		for _, m := range p.chain {
			in := &Instance{s: s, root: p.root, app: p.app, from: m.From, to: m.To, def: e.reg.apps[key(m.App, m.To)]}
			if err := in.run(m.fn); err != nil {
				return nil, nil, &StepError{Session: s.ID, App: key(m.App, m.From), Step: p.call,
					Err: fmt.Errorf("%w: to version %d: %w", ErrMigration, m.To, err)}
			}
		}
		if p.call == 0 {
			s.Version = p.to
		} else {
			s.Pool.Application[p.call].Version = p.to
		}
		ups = append(ups, Upgrade{Call: p.call, App: p.app, From: p.from, To: p.to})
	}
	next, err := e.materialize(ctx, s, true, r.ents)
	if err != nil {
		what := make([]string, len(ups))
		for i, u := range ups {
			what[i] = u.String()
		}
		se, isStep := err.(*StepError)
		if !isStep {
			se = &StepError{Session: s.ID, Err: err}
		}
		se.Err = fmt.Errorf("%w: %s: the migrated session does not fit: %w", ErrMigration, strings.Join(what, ", "), se.Err)
		return nil, nil, se
	}
	return next, ups, nil
}
