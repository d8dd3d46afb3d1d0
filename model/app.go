package model

import (
	"errors"
	"fmt"
	"strconv"
)

// Application is a definition in Go code: a tree of steps with a name and a
// version. Primary and backups have the same applications compiled in and
// registered in a Registry; a session refers to its application by name and
// version, and a new version is registered beside the old one so a running
// session keeps the version it started with.
type Application struct {
	name    string
	version int
	title   string
	ending  string
	endings []*Display
	next    []string
	root    *CompositeStep
	paths   map[string]Step // "" is the root; "drivers/driver" a child of "drivers"
	err     error
}

// App defines an application: its steps run in order, as a Sequence.
func App(name string, version int, steps ...Step) *Application {
	a := &Application{name: name, version: version, root: Sequence("", steps...), paths: map[string]Step{}}
	if !validName(name) {
		a.err = fmt.Errorf("%w: application name %q", ErrBadDefinition, name)
	} else if version < 1 {
		a.err = fmt.Errorf("%w: %s version %d: versions start at 1", ErrBadDefinition, name, version)
	} else {
		a.paths[""] = a.root
		a.err = a.index("", a.root)
	}
	return a
}

// index records the path of every step below parent and checks the
// definitions a registry would otherwise trip over at run time.
func (a *Application) index(prefix string, parent *CompositeStep) error {
	seen := map[string]bool{}
	var errs []error
	for _, st := range parent.steps {
		if st == nil {
			errs = append(errs, fmt.Errorf("%w: %s: nil step under %q", ErrBadDefinition, a.Key(), prefix))
			continue
		}
		name := st.Name()
		path := joinPath(prefix, name)
		switch {
		case !validName(name):
			errs = append(errs, fmt.Errorf("%w: %s: step name %q under %q", ErrBadDefinition, a.Key(), name, prefix))
			continue
		case seen[name]:
			errs = append(errs, fmt.Errorf("%w: %s: two steps named %q under %q", ErrBadDefinition, a.Key(), name, prefix))
			continue
		}
		seen[name] = true
		a.paths[path] = st
		switch s := st.(type) {
		case *CompositeStep:
			if s.mode != sequenceMode && s.cond == nil {
				errs = append(errs, fmt.Errorf("%w: %s: step %q has no condition", ErrBadDefinition, a.Key(), path))
			}
			if s.mode == repeatMode && s.max < 1 {
				errs = append(errs, fmt.Errorf("%w: %s: repeat %q with Max %d", ErrBadDefinition, a.Key(), path, s.max))
			}
			errs = append(errs, a.index(path, s))
		case *InteractiveStep:
			fields := map[string]bool{}
			for _, f := range s.fields {
				if f == nil || !validName(f.name) || fields[f.name] {
					errs = append(errs, fmt.Errorf("%w: %s: step %q: missing, bad or repeated field name", ErrBadDefinition, a.Key(), path))
					continue
				}
				fields[f.name] = true
			}
		case *SimpleStep:
			if s.fn == nil {
				errs = append(errs, fmt.Errorf("%w: %s: simple step %q has no function", ErrBadDefinition, a.Key(), path))
			}
		case *CallStep:
			if s.app == nil {
				errs = append(errs, fmt.Errorf("%w: %s: call step %q has no application", ErrBadDefinition, a.Key(), path))
			}
		}
	}
	return errors.Join(errs...)
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	if name == "" {
		return prefix
	}
	return prefix + "/" + name
}

// Title sets the application's title, shown on its pages.
func (a *Application) Title(t string) *Application { a.title = t; return a }

// Ending sets what the page shown once the application has finished says:
// a heading ("Your car is insured") and values it displays (a policy
// number), read from the application's state.
func (a *Application) Ending(heading string, shows ...*Display) *Application {
	a.ending, a.endings = heading, shows
	return a
}

// WhatNext sets paragraphs the finished page shows under "What happens
// next".
func (a *Application) WhatNext(paragraphs ...string) *Application { a.next = paragraphs; return a }

// Name returns the application's name.
func (a *Application) Name() string { return a.name }

// Version returns the application's version.
func (a *Application) Version() int { return a.version }

// Key returns "name@version", the application's identity in a registry.
func (a *Application) Key() string { return AppKey(a.name, a.version) }

// AppKey returns "name@version": how snapshots, registries and the
// members' announcements name a version of an application.
func AppKey(name string, version int) string { return name + "@" + strconv.Itoa(version) }

// Heading returns the title, or the name.
func (a *Application) Heading() string {
	if a.title != "" {
		return a.title
	}
	return a.name
}

// Step returns the definition at path ("" is the root sequence).
func (a *Application) Step(path string) (Step, bool) {
	s, ok := a.paths[path]
	return s, ok
}

// Paths returns the number of step definitions, the root included.
func (a *Application) Paths() int { return len(a.paths) }
