package model

import (
	"fmt"
	"strings"
)

// StepKind is one of the four kinds of step.
type StepKind uint8

// The four step kinds.
const (
	// CompositeKind holds child steps and runs them in order, repeats one, or
	// chooses one by a condition.
	CompositeKind StepKind = iota + 1
	// SimpleKind runs Go code over the state, with no user input.
	SimpleKind
	// InteractiveKind shows a page and waits for the user's answer.
	InteractiveKind
	// ApplicationKind calls another application like a subroutine.
	ApplicationKind
)

func (k StepKind) String() string {
	switch k {
	case CompositeKind:
		return "composite"
	case SimpleKind:
		return "simple"
	case InteractiveKind:
		return "interactive"
	case ApplicationKind:
		return "application"
	}
	return fmt.Sprintf("stepkind(%d)", uint8(k))
}

// Step is the definition of one step of an application. The four kinds are
// built with Sequence, Repeat and If (composite), Simple, Interactive and Call
// (application). Definitions are immutable once registered and shared by all
// sessions.
type Step interface {
	// Name is the step's name, unique among its siblings: the key under
	// which its value appears in the state.
	Name() string
	// Kind is the step's kind.
	Kind() StepKind
	isStep()
}

// InteractiveStep is a page: fields the user fills in. Invalid input keeps
// the user on the page with a message per field.
type InteractiveStep struct {
	name, title, intro, template string
	fields                       []*Field
	shows                        []*Display
	review                       bool
}

// Interactive defines a page with the given fields. A page with no fields is
// an information page with a Continue button.
func Interactive(name string, fields ...*Field) *InteractiveStep {
	return &InteractiveStep{name: name, fields: fields}
}

// Title sets the page's heading.
func (s *InteractiveStep) Title(t string) *InteractiveStep { s.title = t; return s }

// Intro sets a paragraph shown under the heading.
func (s *InteractiveStep) Intro(t string) *InteractiveStep { s.intro = t; return s }

// Shows adds values the page displays but the user does not enter (see
// Display): a price before the user pays.
func (s *InteractiveStep) Shows(d ...*Display) *InteractiveStep {
	s.shows = append(s.shows, d...)
	return s
}

// Review defines a "check your answers" page: it lists every page answered
// before it, section by section, each with a way to change it
// (Engine.Change), which takes the user back to that page and, once it is
// answered again, straight back here. It may have fields of its own (a
// declaration to tick).
func Review(name string, fields ...*Field) *InteractiveStep {
	return &InteractiveStep{name: name, title: "Check your answers", fields: fields, review: true}
}

// IsReview reports whether the step is a Review page.
func (s *InteractiveStep) IsReview() bool { return s.review }

// Template names a template that renders this page instead of the generic
// one; the serving node looks it up by this name.
func (s *InteractiveStep) Template(name string) *InteractiveStep { s.template = name; return s }

// Fields returns the page's fields.
func (s *InteractiveStep) Fields() []*Field { return s.fields }

func (s *InteractiveStep) Name() string   { return s.name }
func (s *InteractiveStep) Kind() StepKind { return InteractiveKind }
func (*InteractiveStep) isStep()          {}

// Heading returns the page's title, or its name.
func (s *InteractiveStep) Heading() string {
	if s.title != "" {
		return s.title
	}
	return s.name
}

// SimpleFunc is the code of a simple step. It reads the state, may set values
// on its own step with st.Set, and must be deterministic: time, ids and
// idempotency keys come from ctx, so a replay gives the same result.
type SimpleFunc func(ctx Context, st *State) error

// SimpleStep runs Go code with no user input.
type SimpleStep struct {
	name string
	fn   SimpleFunc
}

// Simple defines a step that runs fn.
func Simple(name string, fn SimpleFunc) *SimpleStep { return &SimpleStep{name: name, fn: fn} }

func (s *SimpleStep) Name() string   { return s.name }
func (s *SimpleStep) Kind() StepKind { return SimpleKind }
func (*SimpleStep) isStep()          {}

// Cond is a condition over the state, for If and Repeat. Like a simple step
// it must be deterministic.
type Cond func(st *State) bool

// Is is the condition "the value at path is true".
func Is(path string) Cond { return func(st *State) bool { return st.Get(path).Bool() } }

// While is Is, named for Repeat: repeat while the value at path is true.
func While(path string) Cond { return Is(path) }

// Equals is the condition "the value at path equals v".
func Equals(path string, v Value) Cond { return func(st *State) bool { return st.Get(path).Equal(v) } }

// Not negates a condition.
func Not(c Cond) Cond { return func(st *State) bool { return !c(st) } }

type compositeMode uint8

const (
	sequenceMode compositeMode = iota
	repeatMode
	ifMode
)

// DefaultMaxRepeat bounds a Repeat that sets no Max of its own, so no user
// can grow a session without limit.
const DefaultMaxRepeat = 20

// CompositeStep holds child steps. Its state keeps the instances of the
// children it has started; the last one is where its cursor stands.
type CompositeStep struct {
	name  string
	mode  compositeMode
	steps []Step // sequence: all; repeat: [body]; if: [then] or [then, else]
	cond  Cond
	max   int
}

// Sequence runs steps in order.
func Sequence(name string, steps ...Step) *CompositeStep {
	return &CompositeStep{name: name, mode: sequenceMode, steps: steps}
}

// Repeat runs body, then again while the condition holds after an iteration
// (an "add another driver" loop), at most Max times. The condition is read in
// the scope of the iteration just finished, so While("another") reads the
// field "another" of that iteration.
func Repeat(name string, body Step, again Cond) *CompositeStep {
	return &CompositeStep{name: name, mode: repeatMode, steps: []Step{body}, cond: again, max: DefaultMaxRepeat}
}

// If runs then when cond holds, otherwise the optional otherwise step.
func If(name string, cond Cond, then Step, otherwise ...Step) *CompositeStep {
	steps := []Step{then}
	if len(otherwise) > 0 && otherwise[0] != nil {
		steps = append(steps, otherwise[0])
	}
	return &CompositeStep{name: name, mode: ifMode, steps: steps, cond: cond}
}

// Max sets the most iterations of a Repeat.
func (s *CompositeStep) Max(n int) *CompositeStep { s.max = n; return s }

// Steps returns the children.
func (s *CompositeStep) Steps() []Step { return s.steps }

// IsRepeat reports whether the step is a Repeat.
func (s *CompositeStep) IsRepeat() bool { return s.mode == repeatMode }

func (s *CompositeStep) Name() string   { return s.name }
func (s *CompositeStep) Kind() StepKind { return CompositeKind }
func (*CompositeStep) isStep()          {}

// CallStep runs another application like a subroutine; its value in the
// caller's state is the callee's collected values.
type CallStep struct {
	name string
	app  *Application
	args []callArg
}

type callArg struct{ param, path string }

// Call defines a step that runs app. The callee sees only what With passes
// it; the caller sees the callee's values under the step's name.
func Call(name string, app *Application) *CallStep { return &CallStep{name: name, app: app} }

// With passes the caller's value at path to the callee as parameter param.
func (s *CallStep) With(param, path string) *CallStep {
	s.args = append(s.args, callArg{param, path})
	return s
}

// App returns the called application.
func (s *CallStep) App() *Application { return s.app }

func (s *CallStep) Name() string   { return s.name }
func (s *CallStep) Kind() StepKind { return ApplicationKind }
func (*CallStep) isStep()          {}

// validName reports whether s can name a step or field: it appears in paths
// ("drivers/driver") and state lookups ("applicant.name").
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return !strings.ContainsAny(s, "./ \t\n\r") && strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}
