package model

import (
	"context"
	"strconv"
)

// Answered is one page the user answered, as a summary shows it.
type Answered struct {
	Step   string          `json:"step"`  // location, "drivers/driver"
	Title  string          `json:"title"` // the page's heading, numbered within a repeat: "Drivers (2)"
	Fields []AnsweredField `json:"fields"`
	// Change is what Engine.Change takes to send the user back to this
	// page from a Review page.
	Change string `json:"change"`
}

// AnsweredField is one answer, in words: a choice by its option's label, an
// entity by its label, a tick as yes or no.
type AnsweredField struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Value string `json:"value"`
}

// Answers lists the pages the user has answered, in the order they were
// answered, through repeats and called applications, with every field's
// label and value in words. It is what a summary page and a Review page
// show; unlike Run.Values it leaves out what simple steps computed, and the
// fields that steer the flow (Field.FlowControl).
func (e *Engine) Answers(ctx context.Context, r *Run) []Answered {
	var out []Answered
	e.answers(ctx, r, r.s.Root, 0, &out)
	return out
}

func (e *Engine) answers(ctx context.Context, r *Run, id StepID, iteration int, out *[]Answered) {
	p := &r.s.Pool
	switch def := r.defs[id].def.(type) {
	case *CompositeStep:
		st := p.Composite[id]
		for i, ch := range st.Children {
			n := 0
			if def.mode == repeatMode && len(st.Children) > 1 {
				n = i + 1
			}
			e.answers(ctx, r, ch, max(n, iteration), out)
		}
	case *CallStep:
		if root := p.Application[id].Root; root != 0 {
			e.answers(ctx, r, root, iteration, out)
		}
	case *InteractiveStep:
		st := p.Interactive[id]
		if !st.Done || len(def.fields) == 0 {
			return
		}
		a := Answered{Step: r.location(id), Title: def.Heading(), Change: strconv.FormatUint(uint64(id), 10)}
		if iteration > 0 {
			a.Title += " (" + strconv.Itoa(iteration) + ")"
		}
		for _, f := range def.fields {
			if f.flow {
				continue
			}
			v, _ := st.Params.Get(f.name)
			a.Fields = append(a.Fields, AnsweredField{Name: f.name, Label: f.Title(), Value: e.words(ctx, r, f, v)})
		}
		if len(a.Fields) > 0 {
			*out = append(*out, a)
		}
	}
}

// words renders an answer for people.
func (e *Engine) words(ctx context.Context, r *Run, f *Field, v Value) string {
	switch {
	case v.IsNull():
		return ""
	case f.typ == ChoiceField:
		for _, o := range f.options {
			if o.Value == v.Str() {
				return o.Label
			}
		}
	case v.Kind() == KindRef:
		ref, _ := v.Ref()
		return e.EntityLabel(ctx, r, ref)
	}
	return Words(v)
}
