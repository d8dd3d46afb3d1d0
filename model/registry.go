package model

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Registry holds the application definitions a node can run and rebuild,
// and the migrations between versions of an application (see Migrate).
// Backups rebuild objects only from registered definitions. Register
// everything before the registry is shared; lookups are then safe for
// concurrent use.
type Registry struct {
	apps       map[string]*Application // by Key
	latest     map[string]*Application // by name
	migrations map[string][]*Migration // by application name, ordered by From then To
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{apps: map[string]*Application{}, latest: map[string]*Application{}, migrations: map[string][]*Migration{}}
}

// Register adds applications, and the applications they call. It refuses a
// malformed definition, and a second, different definition under a name and
// version already taken.
func (r *Registry) Register(apps ...*Application) error {
	for _, a := range apps {
		if err := r.register(a, 0); err != nil {
			return err
		}
	}
	return nil
}

// MustRegister is Register for package-level setup; it panics on error.
func (r *Registry) MustRegister(apps ...*Application) *Registry {
	if err := r.Register(apps...); err != nil {
		panic(err)
	}
	return r
}

func (r *Registry) register(a *Application, depth int) error {
	if a == nil {
		return fmt.Errorf("%w: nil application", ErrBadDefinition)
	}
	if a.err != nil {
		return a.err
	}
	if old, ok := r.apps[a.Key()]; ok {
		if old != a {
			return fmt.Errorf("%w: %s registered twice with different definitions", ErrBadDefinition, a.Key())
		}
		return nil
	}
	if depth > 32 {
		return fmt.Errorf("%w: %s: calls nest deeper than 32 applications", ErrBadDefinition, a.Key())
	}
	r.apps[a.Key()] = a
	if l, ok := r.latest[a.name]; !ok || l.version < a.version {
		r.latest[a.name] = a
	}
	for _, path := range slices.Sorted(maps.Keys(a.paths)) {
		if c, ok := a.paths[path].(*CallStep); ok {
			if err := r.register(c.app, depth+1); err != nil {
				return fmt.Errorf("%s step %q: %w", a.Key(), path, err)
			}
		}
	}
	return nil
}

// Lookup returns the application of this name and version.
func (r *Registry) Lookup(name string, version int) (*Application, error) {
	if a, ok := r.apps[name+"@"+fmt.Sprint(version)]; ok {
		return a, nil
	}
	if _, ok := r.latest[name]; ok {
		return nil, fmt.Errorf("%s@%d: %w", name, version, ErrUnknownVersion)
	}
	return nil, fmt.Errorf("%s: %w", quoteShort(name), ErrUnknownApp)
}

// Latest returns the newest registered version of the named application.
func (r *Registry) Latest(name string) (*Application, error) {
	if a, ok := r.latest[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("%s: %w", quoteShort(name), ErrUnknownApp)
}

// Apps returns every registered application, by name then version.
func (r *Registry) Apps() []*Application {
	out := make([]*Application, 0, len(r.apps))
	for _, a := range r.apps {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *Application) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return a.version - b.version
	})
	return out
}

// Keys returns the key ("name@version") of every registered application,
// by name then version: what a node announces it can materialize.
func (r *Registry) Keys() []string {
	apps := r.Apps()
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Key()
	}
	return out
}

// Versions returns the registered versions of the named application, oldest
// first.
func (r *Registry) Versions(name string) []int {
	var out []int
	for _, a := range r.apps {
		if a.name == name {
			out = append(out, a.version)
		}
	}
	slices.Sort(out)
	return out
}

// Migrate registers fn as the migration of a running instance of an
// application from version from to version to, and registers both
// versions (and what they call). The two are versions of one application;
// to is usually from's successor, and a chain (1 to 2, 2 to 3) takes a
// session from 1 to 3. A migration back (2 to 1) is allowed too: it lets a
// group that gets a member on an older build again move sessions back to
// what that member can rebuild (see Target). Migrate refuses a second
// migration between the same two versions.
func (r *Registry) Migrate(from, to *Application, fn MigrateFunc) error {
	switch {
	case from == nil || to == nil:
		return fmt.Errorf("%w: migration of a nil application", ErrBadDefinition)
	case fn == nil:
		return fmt.Errorf("%w: migration %s to %s has no function", ErrBadDefinition, from.Key(), to.Key())
	case from.name != to.name:
		return fmt.Errorf("%w: migration from %s to %s: not versions of one application", ErrBadDefinition, from.Key(), to.Key())
	case from.version == to.version:
		return fmt.Errorf("%w: migration from %s to itself", ErrBadDefinition, from.Key())
	}
	if err := r.Register(from, to); err != nil {
		return err
	}
	for _, m := range r.migrations[from.name] {
		if m.From == from.version && m.To == to.version {
			return fmt.Errorf("%w: migration from %s to %s registered twice", ErrBadDefinition, from.Key(), to.Key())
		}
	}
	ms := append(r.migrations[from.name], &Migration{App: from.name, From: from.version, To: to.version, fn: fn})
	slices.SortFunc(ms, func(a, b *Migration) int {
		if a.From != b.From {
			return a.From - b.From
		}
		return a.To - b.To
	})
	r.migrations[from.name] = ms
	return nil
}

// MustMigrate is Migrate for package-level setup; it panics on error.
func (r *Registry) MustMigrate(from, to *Application, fn MigrateFunc) *Registry {
	if err := r.Migrate(from, to, fn); err != nil {
		panic(err)
	}
	return r
}

// Migrations returns every registered migration, by application name, then
// From, then To.
func (r *Registry) Migrations() []Migration {
	var out []Migration
	for _, name := range slices.Sorted(maps.Keys(r.migrations)) {
		for _, m := range r.migrations[name] {
			out = append(out, *m)
		}
	}
	return out
}

// Target returns the version a running instance of the named application
// at version should move to: the newest version that ok accepts among
// version itself and the registered versions its migrations reach (one
// after another). It is version itself when ok accepts nothing newer that
// can be reached, and also when ok accepts nothing at all: an instance is
// never moved to a version ok refuses.
//
// A node asks with ok "can every live member of the group materialize
// this version?", so that a session moves forward once every member runs
// the new build, and back (where a migration back is registered) when a
// member on an older build joins.
func (r *Registry) Target(name string, version int, ok func(name string, version int) bool) int {
	best := 0
	if ok(name, version) {
		best = version
	}
	for v := range r.reach(name, version) {
		if v > best && ok(name, v) {
			best = v
		}
	}
	if best == 0 {
		return version
	}
	return best
}

// reach returns the versions the migrations of name lead to from version,
// with the migration each is first reached by (a breadth-first search: a
// shortest chain, the same on every node).
func (r *Registry) reach(name string, version int) map[int]*Migration {
	by := map[int]*Migration{}
	queue := []int{version}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, m := range r.migrations[name] {
			if _, seen := by[m.To]; m.From != v || seen || m.To == version {
				continue
			}
			by[m.To] = m
			queue = append(queue, m.To)
		}
	}
	return by
}

// chain returns the migrations that take an instance of name from version
// from to version to, in order; nil when there is none.
func (r *Registry) chain(name string, from, to int) []*Migration {
	by := r.reach(name, from)
	var out []*Migration
	for v := to; v != from; {
		m, ok := by[v]
		if !ok {
			return nil
		}
		out = append(out, m)
		v = m.From
	}
	slices.Reverse(out)
	return out
}
