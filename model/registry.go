package model

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Registry holds the application definitions a node can run and rebuild.
// Backups rebuild objects only from registered definitions. Register
// everything before the registry is shared; lookups are then safe for
// concurrent use.
type Registry struct {
	apps   map[string]*Application // by Key
	latest map[string]*Application // by name
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{apps: map[string]*Application{}, latest: map[string]*Application{}}
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
