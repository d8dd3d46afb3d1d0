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

	// Errors holds a message per field after a refused submission.
	Errors map[string]string `json:"errors,omitempty"`
	// Values is everything collected so far (see State for its shape).
	Values Value `json:"values"`
}

// PageField is one field of a page.
type PageField struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Type     string   `json:"type"`
	Help     string   `json:"help,omitempty"`
	Required bool     `json:"required"`
	Value    string   `json:"value"` // as a form holds it
	Options  []Option `json:"options,omitempty"`
	Error    string   `json:"error,omitempty"`
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
		return pg, nil
	}
	id, step, err := r.waiting()
	if err != nil {
		return nil, err
	}
	pg.Step = r.location(id)
	pg.StepApp = r.defs[id].app.Key()
	pg.StepTitle, pg.Intro, pg.Template = step.Heading(), step.intro, step.template
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
		pg.Fields = append(pg.Fields, pf)
	}
	return pg, nil
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
