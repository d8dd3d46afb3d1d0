package model_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"understudy/model"
)

// onePage is an application of one page with the given fields.
func onePage(t *testing.T, fields ...*model.Field) (*model.Engine, *model.Run) {
	t.Helper()
	reg := model.NewRegistry()
	if err := reg.Register(model.App("one", 1, model.Interactive("page", fields...))); err != nil {
		t.Fatal(err)
	}
	eng := model.NewEngine(reg, nil)
	run, err := eng.Start(ctx, model.Begin{App: "one", Session: model.NewSessionID([16]byte{9}), Now: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return eng, run
}

func TestFieldMarkup(t *testing.T) {
	ten := int64(10)
	opts := func(n int) []model.Option {
		var out []model.Option
		for i := range n {
			out = append(out, model.Opt(strings.Repeat("x", i+1), "X"))
		}
		return out
	}
	for _, c := range []struct {
		name  string
		field *model.Field
		want  model.PageField
	}{
		{"text: the default length", model.Text("a"), model.PageField{Input: "text", MaxLength: model.DefaultMaxLen}},
		{"text: lengths and a token", model.Text("a").MinLen(2).MaxLen(80).Autocomplete("name"),
			model.PageField{Input: "text", MinLength: 2, MaxLength: 80, Autocomplete: "name"}},
		{"text: a pattern", model.Text("a").MaxLen(5).Pattern(regexp.MustCompile(`^[0-9]{2}/[0-9]{2}$`), "MM/YY"),
			model.PageField{Input: "text", MaxLength: 5, Pattern: `[0-9]{2}\/[0-9]{2}`}},
		{"text: a pattern of its own", model.Text("a").Pattern(regexp.MustCompile(`^\d+$`), "digits").HTMLPattern("[0-9]+"),
			model.PageField{Input: "text", MaxLength: model.DefaultMaxLen, Pattern: "[0-9]+"}},
		{"tel", model.Text("a").InputType("tel"), model.PageField{Input: "tel", MaxLength: model.DefaultMaxLen, Autocomplete: "tel"}},
		{"tel with a token", model.Text("a").InputType("tel").Autocomplete("mobile tel"),
			model.PageField{Input: "tel", MaxLength: model.DefaultMaxLen, Autocomplete: "mobile tel"}},
		{"email", model.Email("a"), model.PageField{Input: "email", MaxLength: 254, Autocomplete: "email"}},
		{"int", model.Int("a").Min(0).Max(10), model.PageField{Input: "number", Min: new(int64), Max: &ten, Step: "1"}},
		{"int as text", model.Int("a").InputType("text"), model.PageField{Input: "text", InputMode: "numeric"}},
		{"decimal", model.Decimal("a", 2), model.PageField{Input: "number", Step: "0.01"}},
		{"bool", model.Bool("a"), model.PageField{Input: "checkbox"}},
		{"few choices are radios", model.Choice("a", opts(model.MaxRadios)...), model.PageField{Input: "radio"}},
		{"many choices are a select", model.Choice("a", opts(model.MaxRadios+1)...), model.PageField{Input: "select"}},
		{"a select by choice", model.Choice("a", opts(2)...).InputType("select"), model.PageField{Input: "select"}},
		{"date", model.Date("a").Autocomplete("bday"), model.PageField{Input: "date", Autocomplete: "bday", Parts: []model.DatePart{
			{Name: "a-day", Label: "Day", MaxLength: 2, Autocomplete: "bday-day"},
			{Name: "a-month", Label: "Month", MaxLength: 2, Autocomplete: "bday-month"},
			{Name: "a-year", Label: "Year", MaxLength: 4, Autocomplete: "bday-year"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng, run := onePage(t, c.field)
			pf := page(t, eng, run).Fields[0]
			got := model.PageField{Input: pf.Input, InputMode: pf.InputMode, Autocomplete: pf.Autocomplete, MinLength: pf.MinLength,
				MaxLength: pf.MaxLength, Pattern: pf.Pattern, Min: pf.Min, Max: pf.Max, Step: pf.Step, Parts: pf.Parts}
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(c.want)
			if string(a) != string(b) {
				t.Errorf("markup\n got %s\nwant %s", a, b)
			}
		})
	}
}

// TestPageJSONCarriesTheMarkup: the JSON twin says what the HTML says.
func TestPageJSONCarriesTheMarkup(t *testing.T) {
	eng, run := onePage(t, model.Text("postcode").Required().MaxLen(8).Autocomplete("postal-code").
		Pattern(regexp.MustCompile(`^[A-Z0-9 ]+$`), "letters and digits"),
		model.Int("miles").Min(500).Max(100000), model.Date("born").Autocomplete("bday"))
	b, err := json.Marshal(page(t, eng, run))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"input":"text"`, `"autocomplete":"postal-code"`, `"maxlength":8`, `"pattern":"[ 0-9A-Z]+"`,
		`"input":"number"`, `"min":500`, `"max":100000`, `"step":"1"`, `"name":"born-day"`, `"autocomplete":"bday-year"`, `"back":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON twin lacks %s: %s", want, b)
		}
	}
}

// TestDateParts: a date comes as a day, a month and a year; what the user
// typed is shown again when it is refused, in its three inputs.
func TestDateParts(t *testing.T) {
	eng, run := onePage(t, model.Date("born").Required(), model.Text("name").Required())
	next, err := eng.Submit(ctx, run, model.Input{Values: url.Values{"born-day": {" 7"}, "born-month": {"3"}, "born-year": {"1990"}, "name": {"A"}}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got := next.Values().Key("page").Key("born").Time(); !got.Equal(time.Date(1990, 3, 7, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("born %s", got)
	}

	_, err = eng.Submit(ctx, run, model.Input{Values: url.Values{"born-day": {"30"}, "born-month": {"2"}, "born-year": {"1990"}}, Now: time.Now()})
	var bad *model.InvalidInputError
	if !errors.As(err, &bad) {
		t.Fatalf("30 February: %v", err)
	}
	pg := page(t, eng, run)
	pg.Reject(bad)
	var parts []string
	for _, p := range pg.Fields[0].Parts {
		parts = append(parts, p.Value)
	}
	if strings.Join(parts, " ") != "30 2 1990" || !strings.Contains(pg.Fields[0].Error, "real date") {
		t.Errorf("refused date shows %q, error %q", parts, pg.Fields[0].Error)
	}

	// A JSON client's ISO date, refused for another field, fills the inputs.
	_, err = eng.Submit(ctx, run, model.Input{Values: url.Values{"born": {"1990-03-07"}}, Now: time.Now()})
	if !errors.As(err, &bad) || bad.Fields["name"] == "" {
		t.Fatalf("missing name: %v", err)
	}
	pg = page(t, eng, run)
	pg.Reject(bad)
	if p := pg.Fields[0].Parts; p[0].Value != "7" || p[1].Value != "3" || p[2].Value != "1990" {
		t.Errorf("ISO date in its inputs: %+v", p)
	}
}

// TestCheckAt: a rule may read the interaction's time, and only that.
func TestCheckAt(t *testing.T) {
	notAfter := func(v model.Value, now time.Time) string {
		if v.Time().After(now) {
			return "Not in the future."
		}
		return ""
	}
	eng, run := onePage(t, model.Date("when").CheckAt(notAfter))
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := eng.Submit(ctx, run, model.Input{Values: url.Values{"when": {"2026-06-02"}}, Now: day}); !errors.Is(err, model.ErrInvalidInput) {
		t.Errorf("a day after now: %v", err)
	}
	if _, err := eng.Submit(ctx, run, model.Input{Values: url.Values{"when": {"2026-06-02"}}, Now: day.AddDate(0, 0, 2)}); err != nil {
		t.Errorf("the same day two days later: %v", err)
	}
}

func TestWordsAndMoney(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{model.Words(model.TimeVal(time.Date(1985, 12, 10, 0, 0, 0, 0, time.UTC))), "10 December 1985"},
		{model.Words(model.TimeVal(time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC))), "25 November 2026, 09:30 UTC"},
		{model.Words(model.BoolVal(true)), "Yes"},
		{model.Words(model.BoolVal(false)), "No"},
		{model.Words(model.DecimalVal(1250, 2)), "12.50"},
		{model.Money("£", model.DecimalVal(123456789, 2)), "£1,234,567.89"},
		{model.Money("£", model.DecimalVal(-99, 2)), "-£0.99"},
		{model.Money("€", model.IntVal(1000)), "€1,000"},
		{model.Money("£", model.StringVal("n/a")), "n/a"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestDisplays: a page shows values computed before it, in words or as
// money; a value not computed is left out; a finished application shows
// its ending.
func TestDisplays(t *testing.T) {
	reg := model.NewRegistry().MustRegister(model.App("shop", 1,
		model.Interactive("basket", model.Int("items").Required()),
		model.Simple("price", func(ctx model.Context, st *model.State) error {
			st.Set("total", model.DecimalVal(st.Get("basket.items").Int()*1999, 2))
			st.Set("on", model.TimeVal(ctx.Now().Truncate(24*time.Hour)))
			return nil
		}),
		model.Interactive("pay", model.Bool("ok").Required()).
			Shows(model.Show("Total", "price.total").Money("£"), model.Show("Ordered", "price.on"), model.Show("Never", "price.nothing")),
		model.Simple("order", func(ctx model.Context, st *model.State) error {
			st.Set("number", model.StringVal("ORD-1"))
			return nil
		}),
	).Ending("Thank you for your order", model.Show("Order number", "order.number")).WhatNext("We will send it tomorrow."))
	eng := model.NewEngine(reg, nil)
	run, err := eng.Start(ctx, model.Begin{App: "shop", Session: model.NewSessionID([16]byte{3}), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)
	run, err = eng.Submit(ctx, run, model.Input{Seq: 0, Values: url.Values{"items": {"1000"}}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	pg := page(t, eng, run)
	if len(pg.Display) != 2 || pg.Display[0] != (model.Shown{Label: "Total", Value: "£19,990.00"}) || pg.Display[1].Value != "4 March 2026" {
		t.Errorf("displays %+v", pg.Display)
	}
	run, err = eng.Submit(ctx, run, model.Input{Seq: 1, Values: url.Values{"ok": {"on"}}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	pg = page(t, eng, run)
	if !pg.Finished || pg.StepTitle != "Thank you for your order" || len(pg.Display) != 1 || pg.Display[0].Value != "ORD-1" || pg.Next[0] != "We will send it tomorrow." {
		t.Errorf("finished page %+v", pg)
	}
}

// TestFlowControlIsNotAnAnswer: a tick box that steers a repeat is left
// out of the answers a summary lists.
func TestFlowControlIsNotAnAnswer(t *testing.T) {
	reg := model.NewRegistry().MustRegister(model.App("pets", 1,
		model.Repeat("pets", model.Interactive("pet", model.Text("name").Required(), model.Bool("more").Label("Add another").FlowControl()),
			model.While("more"))))
	eng := model.NewEngine(reg, nil)
	run, err := eng.Start(ctx, model.Begin{App: "pets", Session: model.NewSessionID([16]byte{4}), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	run = submit(t, eng, run, url.Values{"name": {"Rex"}, "more": {"on"}})
	run = submit(t, eng, run, url.Values{"name": {"Tom"}})
	answers := eng.Answers(ctx, run)
	if len(answers) != 2 || answers[1].Title != "pet (2)" {
		t.Fatalf("answers %+v", answers)
	}
	for _, a := range answers {
		if len(a.Fields) != 1 || a.Fields[0].Name != "name" {
			t.Errorf("%s lists %+v", a.Title, a.Fields)
		}
	}
	if !run.Values().Key("pets").Index(0).Key("more").Bool() {
		t.Error("the flow control's value is not kept")
	}
}
