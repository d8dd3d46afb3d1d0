package model

import (
	"context"
	"errors"
	"fmt"
)

// Page describes what the user sees now: the waiting interactive step with
// its fields, or the end of the application. A serving node renders it as
// HTML, or as its JSON twin.
type Page struct {
	Session  SessionID `json:"session,omitempty"`
	App      string    `json:"app"`
	Version  int       `json:"version"`
	Title    string    `json:"title"`
	Seq      uint64    `json:"seq"`
	Finished bool      `json:"finished"`

	// The waiting step, when not finished.
	Step      string      `json:"step,omitempty"`    // "drivers/driver", "payment/card" through calls
	StepApp   string      `json:"stepApp,omitempty"` // the application the step belongs to, "payment@1"
	StepTitle string      `json:"stepTitle,omitempty"`
	Intro     string      `json:"intro,omitempty"`
	Template  string      `json:"-"`
	Fields    []PageField `json:"fields"`
	// Iteration numbers a page within a repeat from 1 (the second driver
	// is 2); 0 outside one.
	Iteration int `json:"iteration,omitempty"`
	// Back says a page before this one can be returned to (Engine.Back):
	// every page after the first.
	Back bool `json:"back"`
	// Display holds values the page shows but the user does not enter (a
	// price), and on a finished application what its Ending shows.
	Display []Shown `json:"display,omitempty"`
	// Review lists, on a Review page, the pages answered before it, each
	// with the token that changes it (Engine.Change).
	Review []Answered `json:"review,omitempty"`
	// Next is what a finished application says happens next (WhatNext).
	Next []string `json:"next,omitempty"`

	// Errors holds a message per field after a refused submission.
	Errors map[string]string `json:"errors,omitempty"`
	// Values is everything collected so far (see State for its shape).
	Values Value `json:"values"`
}

// PageField is one field of a page: what it asks, and what the page's HTML
// says about it so that a browser (and a client that reads the markup)
// helps the user and checks what the server will check. The server
// enforces every rule whatever the markup says.
type PageField struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Type     string   `json:"type"` // the field's kind: text, email, int, decimal, bool, date, choice, entity
	Help     string   `json:"help,omitempty"`
	Required bool     `json:"required"`
	Value    string   `json:"value"` // as a form holds it
	Options  []Option `json:"options,omitempty"`
	Error    string   `json:"error,omitempty"`

	// Input is the control: text, email, tel, number, checkbox, radio,
	// select, or date (a day, a month and a year input: Parts).
	Input        string     `json:"input"`
	InputMode    string     `json:"inputmode,omitempty"`
	Autocomplete string     `json:"autocomplete,omitempty"` // an HTML autofill token: name, email, postal-code, cc-number...
	MinLength    int        `json:"minlength,omitempty"`
	MaxLength    int        `json:"maxlength,omitempty"`
	Pattern      string     `json:"pattern,omitempty"` // as the HTML attribute: an ECMAScript expression matched against the whole value
	Min          *int64     `json:"min,omitempty"`
	Max          *int64     `json:"max,omitempty"`
	Step         string     `json:"step,omitempty"`
	Parts        []DatePart `json:"parts,omitempty"`
}

// Page returns the page the session shows now.
func (e *Engine) Page(ctx context.Context, r *Run) (*Page, error) {
	s := r.s
	app := r.defs[s.Root].app
	pg := &Page{
		Session: s.ID, App: s.App, Version: s.Version, Title: app.Heading(),
		Seq: s.Seq, Finished: s.Finished(), Fields: []PageField{}, Values: r.Values(),
	}
	if pg.Finished {
		pg.StepTitle, pg.Next = app.ending, app.next
		pg.Display = e.shown(ctx, r, s.Root, app.endings)
		return pg, nil
	}
	id, step, err := r.waiting()
	if err != nil {
		return nil, err
	}
	pg.Step = r.location(id)
	pg.StepApp = r.defs[id].app.Key()
	pg.StepTitle, pg.Intro, pg.Template = step.Heading(), step.intro, step.template
	pg.Iteration = r.iteration(id)
	pg.Back = r.previous(id) != 0
	pg.Display = e.shown(ctx, r, id, step.shows)
	if step.review {
		pg.Review = e.Answers(ctx, r)
	}
	params := s.Pool.Interactive[id].Params
	for _, f := range step.fields {
		pf := PageField{
			Name: f.name, Label: f.Title(), Type: f.typ.String(), Help: f.help,
			Required: f.required, Value: f.format(get(params, f.name)), Options: f.options,
		}
		if f.typ == EntityField {
			opts, err := e.choices(ctx, f.entity)
			if err != nil {
				return nil, r.stepError(id, fmt.Errorf("choices for field %s: %w", f.name, err))
			}
			pf.Options = opts
		}
		f.markup(&pf)
		pg.Fields = append(pg.Fields, pf)
	}
	return pg, nil
}

// shown evaluates displays in the scope of step id; a display whose value
// is null is left out.
func (e *Engine) shown(ctx context.Context, r *Run, id StepID, ds []*Display) []Shown {
	var out []Shown
	st := &State{run: r, ctx: ctx, scope: id}
	for _, d := range ds {
		v := st.Get(d.path)
		if v.IsNull() {
			continue
		}
		var text string
		switch {
		case d.format != nil:
			text = d.format(v)
		case v.Kind() == KindRef:
			ref, _ := v.Ref()
			text = e.EntityLabel(ctx, r, ref)
		default:
			text = Words(v)
		}
		out = append(out, Shown{Label: d.label, Value: text})
	}
	return out
}

func (e *Engine) choices(ctx context.Context, typ string) ([]Option, error) {
	if e.res == nil {
		return nil, errors.New("no resolver")
	}
	ents, err := e.res.Choices(ctx, typ)
	if err != nil {
		return nil, err
	}
	opts := make([]Option, len(ents))
	for i, ent := range ents {
		opts[i] = Option{Value: ent.EntityRef().ID, Label: entityLabel(ent)}
	}
	return opts, nil
}

// Reject puts a refused submission's messages, and what the user typed, on
// the page.
func (pg *Page) Reject(bad *InvalidInputError) {
	pg.Errors = bad.Fields
	for i := range pg.Fields {
		f := &pg.Fields[i]
		f.Error = bad.Fields[f.Name]
		if raw, ok := bad.Input[f.Name]; ok {
			f.Value = raw
		}
		if len(f.Parts) == 3 {
			// A date: what was typed in its inputs, or the whole date a
			// JSON client sent, split into them.
			typed := false
			for _, p := range f.Parts {
				_, ok := bad.Input[p.Name]
				typed = typed || ok
			}
			dmy := splitDate(f.Value)
			for j := range f.Parts {
				if typed {
					f.Parts[j].Value = bad.Input[f.Parts[j].Name]
				} else {
					f.Parts[j].Value = dmy[j]
				}
			}
		}
	}
}

// EntityLabel returns how users see the entity a reference names: its label
// if it has one, else its id.
func (e *Engine) EntityLabel(ctx context.Context, r *Run, ref Ref) string {
	ent, err := r.entity(ctx, ref)
	if err != nil {
		return ref.ID
	}
	return entityLabel(ent)
}
