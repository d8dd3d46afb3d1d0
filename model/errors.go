package model

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of these, with the
// session and step they concern, so callers match them with errors.Is.
var (
	// ErrBadSessionID: text that is not a session id.
	ErrBadSessionID = errors.New("bad session id")
	// ErrUnknownApp: no registered application has this name.
	ErrUnknownApp = errors.New("unknown application")
	// ErrUnknownVersion: the application is registered, but not this version.
	ErrUnknownVersion = errors.New("unknown application version")
	// ErrUnknownStep: the application version has no step at this path, or
	// it is of another kind.
	ErrUnknownStep = errors.New("unknown step")
	// ErrBadDefinition: an application definition is malformed (duplicate
	// names, an empty name, a repeat without a condition...).
	ErrBadDefinition = errors.New("bad application definition")
	// ErrCorruptSession: the session's pools do not form the tree its
	// definitions describe (a missing child, a step reached twice, a cursor
	// out of range).
	ErrCorruptSession = errors.New("corrupt session")
	// ErrStaleInteraction: a submission made from a page rendered at an
	// older interaction sequence. It must not be applied again.
	ErrStaleInteraction = errors.New("stale interaction")
	// ErrFinished: the session's application has finished; it takes no
	// more input.
	ErrFinished = errors.New("application finished")
	// ErrInvalidInput: the input failed validation. The error is an
	// *InvalidInputError carrying a message per field.
	ErrInvalidInput = errors.New("invalid input")
	// ErrUnresolved: an entity reference names an entity the resolver
	// does not have.
	ErrUnresolved = errors.New("unresolved entity reference")
	// ErrStaleEntity: an entity changed (its version differs) since the
	// session referred to it, and the field's rule does not allow a reload.
	ErrStaleEntity = errors.New("stale entity")
	// ErrLimit: a session grew past one of the engine's limits (steps,
	// repeat iterations, nested applications).
	ErrLimit = errors.New("session limit")
	// ErrStepFailed: a simple step's function returned an error.
	ErrStepFailed = errors.New("step failed")
	// ErrMigration: a registered migration returned an error or panicked,
	// or the session it made does not fit the target version's definition.
	ErrMigration = errors.New("migration failed")
	// ErrCannotMove: a step back from the first page, or a change from a
	// page that is not a review or to a page it does not list.
	ErrCannotMove = errors.New("cannot go to that page")
)

// StepError is an error about one step of one session. It names both, so an
// operator reading a log knows which user is affected and where.
type StepError struct {
	Session SessionID
	App     string // application name and version, "car-quote@3"
	Step    StepID // 0 when the error is about no particular instance
	Path    string // the step's path in its application
	Err     error
}

func (e *StepError) Error() string {
	var b strings.Builder
	b.WriteString("session ")
	b.WriteString(string(e.Session))
	if e.App != "" {
		b.WriteString(" app ")
		b.WriteString(e.App)
	}
	if e.Path != "" || e.Step != 0 {
		fmt.Fprintf(&b, " step %q", e.Path)
		if e.Step != 0 {
			fmt.Fprintf(&b, " (#%d)", e.Step)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// InvalidInputError reports why a submission was refused: a message per
// field, keyed by field name. The session is unchanged; the page is shown
// again with the messages and the values the user typed.
type InvalidInputError struct {
	Session SessionID
	Step    string            // path of the interactive step
	Fields  map[string]string // field name → message
	Input   map[string]string // field name → what the user sent, to show again
}

func (e *InvalidInputError) Error() string {
	names := slices.Sorted(maps.Keys(e.Fields))
	return fmt.Sprintf("session %s step %q: %v: %s", e.Session, e.Step, ErrInvalidInput, strings.Join(names, ", "))
}

func (e *InvalidInputError) Unwrap() error { return ErrInvalidInput }
