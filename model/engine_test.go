package model_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"understudy/model"
	"understudy/model/modeltest"
)

var ctx = context.Background()

func submit(t *testing.T, eng *model.Engine, run *model.Run, vals url.Values) *model.Run {
	t.Helper()
	next, err := eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: vals, Now: modeltest.Epoch.Add(time.Minute), Node: "n1", Epoch: 1})
	if err != nil {
		t.Fatalf("submit %v: %v", vals, err)
	}
	return next
}

func page(t *testing.T, eng *model.Engine, run *model.Run) *model.Page {
	t.Helper()
	pg, err := eng.Page(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

func TestQuoteRunsToTheEnd(t *testing.T) {
	eng := modeltest.Engine()
	run, n, err := modeltest.Drive(ctx, eng, modeltest.SessionID(1), 3, "")
	if err != nil {
		t.Fatal(err)
	}
	if !run.Finished() {
		t.Fatal("not finished")
	}
	// applicant, vehicle, 3×(who, more), cover, method, card details, confirm
	if want := 2 + 3*2 + 1 + 1 + 1 + 1; n != want || run.Seq() != uint64(want) {
		t.Errorf("interactions %d seq %d, want %d", n, run.Seq(), want)
	}
	v := run.Values()
	checks := map[string]string{
		"applicant.name":                 "Ada Lovelace 0",
		"drivers.2.who.name":             "Driver 2",
		"drivers.0.risk.factor":          "150",
		"price.drivers":                  "3",
		"extras.cover.level":             "full",
		"payment.card.mask.last4":        "1111",
		"payment.authorize.charged":      v.Key("price").Key("premium").String(),
		"payment.method.plan":            "monthly",
		"confirm.agree":                  "yes",
		"vehicle.car":                    "vehicles/v1@1",
		"price.breakdown.factors.1":      "3",
		"price.premium.x":                "<missing>",
		"payment.card.details.expires":   "2029-08-01",
		"drivers.1.more.another":         "yes",
		"drivers.2.more.another":         "no",
		"payment.authorize.key":          string(modeltest.SessionID(1)) + "-",
		"payment.card.details.holder":    "A. Lovelace",
		"applicant.email":                "ada@example.com",
		"vehicle.mileage":                "12000",
		"price.premium":                  v.Key("payment").Key("authorize").Key("charged").String(),
		"payment.card.mask.token":        "",
		"price.offerExtras":              "yes",
		"extras.noExtras":                "<missing>",
		"drivers.0.who.years":            "0",
		"price.breakdown.base":           "310.00",
		"payment.method.provider":        "providers/acme@7",
		"payment.card.details.number":    "4111111111111111",
		"applicant.born":                 "1985-12-10",
		"price.quotedAt":                 "",
		"drivers.1.who.name":             "Driver 1",
		"drivers.2.risk.factor":          "150",
		"payment.authorize.at":           "",
		"payment.card.mask":              "",
		"payment.card":                   "",
		"drivers":                        "",
		"payment":                        "",
		"price":                          "",
		"extras":                         "",
		"confirm":                        "",
		"applicant":                      "",
		"vehicle":                        "",
		"price.breakdown":                "",
		"price.breakdown.factors":        "",
		"drivers.0":                      "",
		"payment.method":                 "",
		"payment.authorize":              "",
		"payment.card.details":           "",
		"drivers.0.who":                  "",
		"drivers.0.risk":                 "",
		"drivers.0.more":                 "",
		"drivers.1":                      "",
		"drivers.2":                      "",
		"payment.card.mask.last4.x":      "<missing>",
		"nothing":                        "<missing>",
		"drivers.3":                      "<missing>",
		"drivers.x":                      "<missing>",
		"applicant.name.first":           "<missing>",
		"payment.card.details.cvc":       "<missing>",
		"extras.cover.level.deep.deeper": "<missing>",
	}
	for path, want := range checks {
		got, ok := lookup(v, path)
		switch {
		case want == "<missing>":
			if ok {
				t.Errorf("%s = %q, want missing", path, got)
			}
		case !ok:
			t.Errorf("%s missing", path)
		case want != "" && !strings.HasPrefix(got, want):
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if _, err := eng.Submit(ctx, run, model.Input{Seq: run.Seq()}); !errors.Is(err, model.ErrFinished) {
		t.Errorf("submit after the end: %v, want ErrFinished", err)
	}
	pg := page(t, eng, run)
	if !pg.Finished || pg.Step != "" || len(pg.Fields) != 0 {
		t.Errorf("final page %+v", pg)
	}
}

// lookup walks a value by a dotted path.
func lookup(v model.Value, path string) (string, bool) {
	for _, p := range strings.Split(path, ".") {
		switch v.Kind() {
		case model.KindMap:
			found := false
			for _, k := range v.Keys() {
				if k == p {
					found = true
				}
			}
			if !found {
				return "", false
			}
			v = v.Key(p)
		case model.KindList:
			i := -1
			for j := range v.Len() {
				if p == string(rune('0'+j)) {
					i = j
				}
			}
			if i < 0 {
				return "", false
			}
			v = v.Index(i)
		default:
			return "", false
		}
	}
	return v.String(), true
}

func TestDeterministic(t *testing.T) {
	a, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(2), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(2), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Session().Equal(b.Session()) {
		t.Fatal("two runs of the same inputs differ")
	}
}

func TestValidation(t *testing.T) {
	eng := modeltest.Engine()
	start, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(3), 1, "applicant")
	if err != nil {
		t.Fatal(err)
	}
	vehicle := submit(t, eng, start, modeltest.Answers("applicant", 1, 0))
	who := submit(t, eng, vehicle, modeltest.Answers("vehicle", 1, 0))
	cases := []struct {
		name  string
		run   *model.Run
		input url.Values
		field string
		msg   string
	}{
		{"required text", start, url.Values{"email": {"a@b.c"}, "born": {"1980-01-01"}}, "name", "required"},
		{"blank text", start, url.Values{"name": {"   "}, "email": {"a@b.c"}, "born": {"1980-01-01"}}, "name", "required"},
		{"too long", start, url.Values{"name": {strings.Repeat("x", 81)}, "email": {"a@b.c"}, "born": {"1980-01-01"}}, "name", "At most 80"},
		{"huge input", start, url.Values{"name": {strings.Repeat("x", 10000)}, "email": {"a@b.c"}, "born": {"1980-01-01"}}, "name", "not valid"},
		{"bad utf8", start, url.Values{"name": {"\xff\xfe"}, "email": {"a@b.c"}, "born": {"1980-01-01"}}, "name", "not valid"},
		{"bad email", start, url.Values{"name": {"A"}, "email": {"Ada <a@b.c>"}, "born": {"1980-01-01"}}, "email", "e-mail"},
		{"bad date", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born": {"1985-13-10"}}, "born", "real date"},
		{"no such day", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born-day": {"31"}, "born-month": {"2"}, "born-year": {"1985"}}, "born", "real date"},
		{"a part missing", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born-day": {"3"}, "born-year": {"1985"}}, "born", "must include a month"},
		{"letters", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born-day": {"3"}, "born-month": {"May"}, "born-year": {"1985"}}, "born", "in numbers"},
		{"two-digit year", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born-day": {"3"}, "born-month": {"5"}, "born-year": {"85"}}, "born", "four digits"},
		{"too young in parts", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born-day": {"1"}, "born-month": {"1"}, "born-year": {"2015"}}, "born", "at least 18"},
		{"too young", start, url.Values{"name": {"A"}, "email": {"a@b.c"}, "born": {"2015-01-01"}}, "born", "at least 18"},
		{"unknown entity", vehicle, url.Values{"car": {"v99"}}, "car", "Choose one"},
		{"not a number", vehicle, url.Values{"car": {"v1"}, "mileage": {"12k"}}, "mileage", "whole number"},
		{"below min", vehicle, url.Values{"car": {"v1"}, "mileage": {"-1"}}, "mileage", "At least 0"},
		{"above max", who, url.Values{"name": {"B"}, "years": {"81"}}, "years", "At most 80"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, err := eng.Submit(ctx, c.run, model.Input{Seq: c.run.Seq(), Values: c.input, Now: modeltest.Epoch})
			var bad *model.InvalidInputError
			if !errors.As(err, &bad) || !errors.Is(err, model.ErrInvalidInput) || next != nil {
				t.Fatalf("got %v, %v; want *InvalidInputError", next, err)
			}
			if !strings.Contains(bad.Fields[c.field], c.msg) {
				t.Errorf("message for %s = %q, want %q (all: %v)", c.field, bad.Fields[c.field], c.msg, bad.Fields)
			}
			if bad.Session != c.run.ID() {
				t.Errorf("error names session %s", bad.Session)
			}
			if strings.Contains(err.Error(), "1980") || strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error text carries user input: %v", err)
			}
			pg := page(t, eng, c.run)
			pg.Reject(bad)
			for _, f := range pg.Fields {
				if f.Name == c.field && f.Error == "" {
					t.Errorf("page field %s has no error", f.Name)
				}
			}
		})
	}
	if start.Seq() != 0 || vehicle.Seq() != 1 {
		t.Errorf("a refused submission changed the run: seq %d, %d", start.Seq(), vehicle.Seq())
	}
}

func TestStaleInteraction(t *testing.T) {
	eng := modeltest.Engine()
	run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(4), 1, "vehicle")
	if err != nil {
		t.Fatal(err)
	}
	_, err = eng.Submit(ctx, run, model.Input{Seq: run.Seq() - 1, Values: modeltest.Answers("applicant", 1, 0), Now: modeltest.Epoch})
	if !errors.Is(err, model.ErrStaleInteraction) || !strings.Contains(err.Error(), string(run.ID())) {
		t.Fatalf("got %v, want ErrStaleInteraction naming the session", err)
	}
	// The page the user sees is unchanged by the stale submission.
	if pg := page(t, eng, run); pg.Step != "vehicle" || pg.Seq != run.Seq() {
		t.Errorf("page %s at %d", pg.Step, pg.Seq)
	}
}

func TestSubmitLeavesTheOldRunAlone(t *testing.T) {
	eng := modeltest.Engine()
	run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(5), 1, "vehicle")
	if err != nil {
		t.Fatal(err)
	}
	before := run.Session().Clone()
	next := submit(t, eng, run, modeltest.Answers("vehicle", 1, 0))
	if !run.Session().Equal(before) {
		t.Fatal("Submit modified the run it was given")
	}
	if next.Seq() != run.Seq()+1 {
		t.Errorf("seq %d after %d", next.Seq(), run.Seq())
	}
}

func TestRepeat(t *testing.T) {
	for _, c := range []struct{ ask, want int }{{1, 1}, {2, 2}, {5, 5}, {40, 12}} {
		run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(6), c.ask, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := run.Values().Key("drivers").Len(); got != c.want {
			t.Errorf("asked for %d drivers, got %d, want %d", c.ask, got, c.want)
		}
	}
}

// tiny builds a registry around a small application.
func tiny(t *testing.T, steps ...model.Step) *model.Engine {
	t.Helper()
	reg := model.NewRegistry()
	if err := reg.Register(model.App("tiny", 1, steps...)); err != nil {
		t.Fatal(err)
	}
	return model.NewEngine(reg, modeltest.Resolver())
}

func start(t *testing.T, eng *model.Engine) *model.Run {
	t.Helper()
	run, err := eng.Start(ctx, model.Begin{App: "tiny", Session: modeltest.SessionID(9), Now: modeltest.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestIfBranches(t *testing.T) {
	eng := tiny(t,
		model.Interactive("ask", model.Bool("yes")),
		model.If("branch", model.Is("ask.yes"),
			model.Interactive("then", model.Text("a")),
			model.Interactive("else", model.Text("b"))),
		model.If("only", model.Is("ask.yes"), model.Interactive("extra")),
	)
	yes := submit(t, eng, start(t, eng), url.Values{"yes": {"on"}})
	if pg := page(t, eng, yes); pg.Step != "branch/then" {
		t.Errorf("yes went to %s", pg.Step)
	}
	yes = submit(t, eng, yes, url.Values{"a": {"x"}})
	if pg := page(t, eng, yes); pg.Step != "only/extra" {
		t.Errorf("then went to %s", pg.Step)
	}
	no := submit(t, eng, start(t, eng), nil)
	if pg := page(t, eng, no); pg.Step != "branch/else" {
		t.Errorf("no went to %s", pg.Step)
	}
	no = submit(t, eng, no, url.Values{"b": {"y"}})
	if !no.Finished() {
		t.Error("an If without otherwise did not skip")
	}
}

func TestCallSeesOnlyItsArguments(t *testing.T) {
	var seen []string
	callee := model.App("callee", 1, model.Simple("look", func(ctx model.Context, st *model.State) error {
		seen = append(seen, st.Get("x").String(), st.Get("first.a").String())
		st.Set("out", model.IntVal(42))
		return nil
	}))
	eng := tiny(t,
		model.Interactive("first", model.Text("a")),
		model.Call("sub", callee).With("x", "first.a"),
		model.Simple("after", func(ctx model.Context, st *model.State) error {
			seen = append(seen, st.Get("sub.look.out").String())
			return nil
		}),
	)
	run := submit(t, eng, start(t, eng), url.Values{"a": {"hello"}})
	if !run.Finished() {
		t.Fatal("not finished")
	}
	if strings.Join(seen, ",") != "hello,,42" {
		t.Errorf("callee saw %q", seen)
	}
}

func TestStepFailures(t *testing.T) {
	boom := errors.New("rate service down")
	cases := map[string]model.SimpleFunc{
		"error": func(model.Context, *model.State) error { return boom },
		"panic": func(model.Context, *model.State) error { panic("nil map") },
		"set in condition": func(model.Context, *model.State) error {
			return nil
		},
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			steps := []model.Step{model.Interactive("ask"), model.Simple("fails", fn)}
			if name == "set in condition" {
				steps = append(steps, model.If("cond", func(st *model.State) bool { st.Set("x", model.Null); return true }, model.Interactive("x")))
			}
			eng := tiny(t, steps...)
			run := start(t, eng)
			_, err := eng.Submit(ctx, run, model.Input{Seq: 0, Now: modeltest.Epoch})
			var se *model.StepError
			if !errors.Is(err, model.ErrStepFailed) || !errors.As(err, &se) || se.Session != run.ID() {
				t.Fatalf("got %v, want a StepError with ErrStepFailed", err)
			}
			if name == "error" && !errors.Is(err, boom) {
				t.Errorf("cause lost: %v", err)
			}
		})
	}
}

func TestRegistryRefusesBadDefinitions(t *testing.T) {
	ok := model.Interactive("a")
	cases := map[string]*model.Application{
		"empty name":       model.App("", 1, ok),
		"zero version":     model.App("x", 0, ok),
		"dotted step":      model.App("x", 1, model.Interactive("a.b")),
		"twin steps":       model.App("x", 1, model.Interactive("a"), model.Interactive("a")),
		"twin fields":      model.App("x", 1, model.Interactive("a", model.Text("f"), model.Int("f"))),
		"nil step":         model.App("x", 1, nil),
		"no function":      model.App("x", 1, model.Simple("s", nil)),
		"no condition":     model.App("x", 1, model.Repeat("r", ok, nil)),
		"no app":           model.App("x", 1, model.Call("c", nil)),
		"repeat max 0":     model.App("x", 1, model.Repeat("r", ok, model.Is("a")).Max(0)),
		"nested twin step": model.App("x", 1, model.Sequence("s", model.Interactive("a"), model.Interactive("a"))),
	}
	for name, app := range cases {
		if err := model.NewRegistry().Register(app); !errors.Is(err, model.ErrBadDefinition) {
			t.Errorf("%s: got %v, want ErrBadDefinition", name, err)
		}
	}
	reg := model.NewRegistry().MustRegister(model.App("x", 1, ok))
	if err := reg.Register(model.App("x", 1, ok)); !errors.Is(err, model.ErrBadDefinition) {
		t.Errorf("a second x@1: %v", err)
	}
	if err := reg.Register(model.App("x", 2, ok)); err != nil {
		t.Errorf("x@2 beside x@1: %v", err)
	}
	if a, _ := reg.Latest("x"); a.Version() != 2 {
		t.Errorf("latest x is %d", a.Version())
	}
	if _, err := reg.Lookup("x", 3); !errors.Is(err, model.ErrUnknownVersion) {
		t.Errorf("x@3: %v", err)
	}
	if _, err := reg.Lookup("y", 1); !errors.Is(err, model.ErrUnknownApp) {
		t.Errorf("y@1: %v", err)
	}
}

func TestSessionIDs(t *testing.T) {
	id := modeltest.SessionID(7)
	if got, err := model.ParseSessionID(string(id)); err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	bad := []string{
		"", "short", strings.Repeat("a", 27), strings.ToUpper(string(id)),
		string(id[:25]) + ".", string(id[:25]) + "*", string(id[:25]) + ">", string(id[:25]) + " ",
		string(id[:25]) + "\x00", string(id[:25]) + "1", strings.Repeat("x", 10240),
		string(id[:25]) + "7", // 130 bits: the last character's low bits must be zero
	}
	for _, s := range bad {
		_, err := model.ParseSessionID(s)
		if !errors.Is(err, model.ErrBadSessionID) {
			t.Errorf("%q accepted", s)
		}
		if err != nil && len(err.Error()) > 120 {
			t.Errorf("error for a %d-byte id is %d bytes long", len(s), len(err.Error()))
		}
	}
}
