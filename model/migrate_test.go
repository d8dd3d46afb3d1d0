package model_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"understudy/model"
	"understudy/model/modeltest"
)

// The quote of modeltest (car-quote@3) and the versions after it, as a
// team would write them:
//
//	@4 splits the applicant's name into first and last, moves the email
//	   to a page of its own after the applicant ("contact"), and renames
//	   "extras" to "options";
//	@5 drops the confirmation page.
//
// and payment@3, whose method page calls the plan "schedule".
var (
	quote3 = modeltest.QuoteApp()
	quote4 = quoteV4()
	quote5 = quoteV5()
	pay3   = paymentV3()
)

func step(app *model.Application, path string) model.Step {
	s, ok := app.Step(path)
	if !ok {
		panic("no step " + path)
	}
	return s
}

func quoteV4() *model.Application {
	return model.App("car-quote", 4,
		model.Interactive("applicant",
			model.Text("first").Required().MaxLen(40),
			model.Text("last").Required().MaxLen(40),
			model.Date("born").Required().MinAge(18),
			model.Text("phone").MaxLen(30),
			model.Text("street").Required(),
			model.Text("city").Required(),
			model.Text("postcode").Required().MaxLen(10)),
		model.Interactive("contact", model.Email("email").Required(), model.Bool("news")),
		step(quote3, "vehicle"),
		step(quote3, "drivers"),
		step(quote3, "price"),
		model.If("options", model.Is("price.offerExtras"), step(quote3, "extras/cover"), step(quote3, "extras/noExtras")),
		step(quote3, "payment"),
		step(quote3, "confirm"),
	)
}

func quoteV5() *model.Application {
	var steps []model.Step
	for _, s := range step(quote4, "").(*model.CompositeStep).Steps() {
		if s.Name() != "confirm" {
			steps = append(steps, s)
		}
	}
	return model.App("car-quote", 5, steps...)
}

func paymentV3() *model.Application {
	pay2 := step(quote3, "payment").(*model.CallStep).App()
	return model.App("payment", 3,
		model.Interactive("method",
			model.Choice("schedule", model.Opt("monthly", "Monthly"), model.Opt("yearly", "Yearly")).Required(),
			model.Pick("provider", "providers").Required()),
		step(pay2, "card"),
		step(pay2, "authorize"),
	)
}

// up34 is quote 3 to 4.
func up34(in *model.Instance) error {
	in.Rename("extras", "options")
	var email model.Value
	for _, a := range in.Steps("applicant") {
		if name, ok := a.Params.Get("name"); ok {
			first, last := split(name.Str())
			a.Params.Delete("name")
			a.Params.Set("first", model.StringVal(first))
			a.Params.Set("last", model.StringVal(last))
		}
		email, _ = a.Params.Get("email")
		a.Params.Delete("email")
	}
	_, err := in.Insert("contact", model.Params{{Name: "email", Value: email}})
	return err
}

// down43 is quote 4 back to 3.
func down43(in *model.Instance) error {
	in.Rename("options", "extras")
	var email model.Value
	for _, c := range in.Steps("contact") {
		email, _ = c.Params.Get("email")
	}
	in.Remove("contact")
	for _, a := range in.Steps("applicant") {
		if !a.Done {
			continue
		}
		first, _ := a.Params.Get("first")
		last, _ := a.Params.Get("last")
		a.Params.Delete("first")
		a.Params.Delete("last")
		a.Params.Set("name", model.StringVal(strings.TrimSpace(first.Str()+" "+last.Str())))
		a.Params.Set("email", email)
	}
	return nil
}

// up45 is quote 4 to 5.
func up45(in *model.Instance) error {
	in.Remove("confirm")
	return nil
}

// up23 is payment 2 to 3.
func up23(in *model.Instance) error {
	for _, m := range in.Steps("method") {
		if v, ok := m.Params.Get("plan"); ok {
			m.Params.Delete("plan")
			m.Params.Set("schedule", v)
		}
	}
	return nil
}

func split(name string) (string, string) {
	if i := strings.LastIndexByte(name, ' '); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

func migrations() *model.Registry {
	pay2 := step(quote3, "payment").(*model.CallStep).App()
	return model.NewRegistry().
		MustMigrate(quote3, quote4, up34).
		MustMigrate(quote4, quote5, up45).
		MustMigrate(quote4, quote3, down43).
		MustMigrate(pay2, pay3, up23)
}

func all(string, int) bool { return true }

// only accepts the given versions of the quote, and every version of the
// other applications.
func only(versions ...int) func(string, int) bool {
	return func(name string, v int) bool { return name != "car-quote" || slices.Contains(versions, v) }
}

// answers are modeltest's, for the pages of every version here.
func answers(step string, drivers, i int) url.Values {
	switch step {
	case "options/cover":
		return modeltest.Answers("extras/cover", drivers, i)
	case "contact":
		return url.Values{"email": {"ada@example.com"}}
	case "applicant":
		v := modeltest.Answers(step, drivers, i)
		v.Set("first", "Ada")
		v.Set("last", "Lovelace")
		return v
	case "payment/method":
		v := modeltest.Answers(step, drivers, i)
		v.Set("schedule", v.Get("plan"))
		return v
	}
	return modeltest.Answers(step, drivers, i)
}

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// finish answers pages until the session finishes.
func finish(t tb, eng *model.Engine, r *model.Run, drivers int) *model.Run {
	t.Helper()
	driver := 0
	for range 100 {
		if r.Finished() {
			return r
		}
		pg, err := eng.Page(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if pg.Step == "drivers/driver/more" {
			driver++
		}
		next, err := eng.Submit(ctx, r, model.Input{Seq: r.Seq(), Values: answers(pg.Step, drivers, driver), Now: modeltest.Epoch, Node: "n2", Epoch: 2})
		if err != nil {
			t.Fatalf("at %s: %v", pg.Step, err)
		}
		r = next
	}
	t.Fatal("no end")
	return nil
}

// at drives a quote@3 with drivers drivers to the page stop ("": the end),
// as a node of the build before version 4 would.
func at(t tb, _ *model.Engine, n, drivers int, stop string) *model.Run {
	t.Helper()
	r, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(n), drivers, stop)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistryMigrateRefuses(t *testing.T) {
	other := model.App("other", 1, model.Interactive("a"))
	reg := migrations()
	cases := []struct {
		name     string
		from, to *model.Application
		fn       model.MigrateFunc
	}{
		{"nil application", nil, quote4, up34},
		{"no function", quote3, quote4, nil},
		{"another application", quote3, other, up34},
		{"to itself", quote3, quote3, up34},
		{"twice", quote3, quote4, up34},
		{"a clash of definitions", model.App("car-quote", 4, model.Interactive("x")), quote5, up45},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := reg.Migrate(c.from, c.to, c.fn); !errors.Is(err, model.ErrBadDefinition) {
				t.Fatalf("err %v, want ErrBadDefinition", err)
			}
		})
	}
	if got := len(reg.Migrations()); got != 4 {
		t.Errorf("%d migrations after refusals, want 4", got)
	}
	if got := reg.Versions("car-quote"); !slices.Equal(got, []int{3, 4, 5}) {
		t.Errorf("versions %v", got)
	}
	if got := reg.Keys(); !slices.Equal(got, []string{"car-quote@3", "car-quote@4", "car-quote@5", "card@1", "payment@2", "payment@3"}) {
		t.Errorf("keys %v", got)
	}
}

func TestRegistryTarget(t *testing.T) {
	reg := migrations()
	cases := []struct {
		name    string
		version int
		ok      func(string, int) bool
		want    int
	}{
		{"all: the newest reachable", 3, all, 5},
		{"a chain stops where members stop", 3, only(3, 4), 4},
		{"a version in between need not be readable", 3, only(3, 5), 5},
		{"already newest", 5, all, 5},
		{"no migration from 5", 5, only(3, 4), 5},
		{"back to what members read", 4, only(3), 3},
		{"nothing readable: stays", 4, only(), 4},
		{"an unknown version stays", 9, all, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := reg.Target("car-quote", c.version, c.ok); got != c.want {
				t.Fatalf("target from %d: %d, want %d", c.version, got, c.want)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	eng := model.NewEngine(migrations(), modeltest.Resolver())
	cases := []struct {
		name   string
		stop   string
		ok     func(string, int) bool
		want   int // the quote's version after
		page   string
		finish bool
		check  func(t *testing.T, v model.Value)
	}{
		{name: "at the first page: nothing to move but the version", stop: "applicant", ok: only(3, 4), want: 4, page: "applicant"},
		{name: "past the applicant: name split, contact inserted", stop: "drivers/driver/who", ok: only(3, 4), want: 4, page: "drivers/driver/who",
			check: func(t *testing.T, v model.Value) {
				a := v.Key("applicant")
				if a.Key("first").Str() != "Ada Lovelace" || a.Key("last").Str() != "0" || !a.Key("name").IsNull() {
					t.Errorf("applicant %v", a)
				}
				if v.Key("contact").Key("email").Str() != "ada@example.com" || !a.Key("email").IsNull() {
					t.Errorf("contact %v, applicant %v", v.Key("contact"), a)
				}
			}},
		{name: "a renamed step that waits", stop: "extras/cover", ok: only(3, 4), want: 4, page: "options/cover"},
		{name: "a chain", stop: "payment/method", ok: all, want: 5, page: "payment/method"},
		{name: "the page that waited is gone: the session goes on", stop: "confirm", ok: all, want: 5, finish: true},
		{name: "finished", stop: "", ok: all, want: 5, finish: true,
			check: func(t *testing.T, v model.Value) {
				if !v.Key("confirm").IsNull() {
					t.Errorf("confirm still there: %v", v.Key("confirm"))
				}
			}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := at(t, eng, 100+i, 3, c.stop)
			before := r.Session().Clone()
			next, ups, err := eng.Migrate(ctx, r, c.ok)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Session().Equal(before) {
				t.Fatal("Migrate changed the run it was given")
			}
			s := next.Session()
			if s.Version != c.want || len(ups) == 0 || ups[0].Call != 0 || ups[0].From != 3 || ups[0].To != c.want {
				t.Fatalf("version %d, upgrades %v", s.Version, ups)
			}
			if s.Seq != before.Seq || s.ID != before.ID || s.Epoch != before.Epoch || !s.Updated.Equal(before.Updated) {
				t.Fatalf("stamps changed: seq %d epoch %d", s.Seq, s.Epoch)
			}
			if next.Finished() != c.finish {
				t.Fatalf("finished %v", next.Finished())
			}
			if !c.finish {
				if pg := page(t, eng, next); pg.Step != c.page || pg.Seq != before.Seq {
					t.Fatalf("page %s at %d, want %s", pg.Step, pg.Seq, c.page)
				}
			}
			if c.check != nil {
				c.check(t, next.Values())
			}
			// It fits the new version: a backup materializes it as it is.
			back, err := eng.Materialize(ctx, s)
			if err != nil || !back.Session().Equal(s) {
				t.Fatalf("materialize the migrated session: %v", err)
			}
			finish(t, eng, next, 3)
		})
	}
}

func TestMigrateCalledApplication(t *testing.T) {
	eng := model.NewEngine(migrations(), modeltest.Resolver())
	r := at(t, eng, 7, 1, "payment/card/details")
	next, ups, err := eng.Migrate(ctx, r, func(name string, v int) bool { return name != "car-quote" || v == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].App != "payment" || ups[0].Call == 0 || ups[0].From != 2 || ups[0].To != 3 {
		t.Fatalf("upgrades %v", ups)
	}
	if got := next.Session().Apps(); !slices.Equal(got, []string{"car-quote@3", "card@1", "payment@3"}) {
		t.Fatalf("apps %v", got)
	}
	if v := next.Values().Key("payment").Key("method"); v.Key("schedule").Str() != "monthly" || !v.Key("plan").IsNull() {
		t.Fatalf("method %v", v)
	}
}

func TestMigrateNothingToDo(t *testing.T) {
	eng := model.NewEngine(migrations(), modeltest.Resolver())
	r := at(t, eng, 1, 2, "vehicle")
	for _, ok := range []func(string, int) bool{only(3), only()} {
		next, ups, err := eng.Migrate(ctx, r, ok)
		if err != nil || next != r || ups != nil {
			t.Fatalf("Migrate with nothing to do: %v %v %v", next == r, ups, err)
		}
	}
}

func TestMigrateInsert(t *testing.T) {
	// Where the session has gone past contact's place (it waits on the
	// vehicle page, after it), contact is inserted; where it has not (it
	// waits on the applicant page), it is not: the page comes when the
	// user gets there. vehicle exists already; the other three cannot be
	// inserted.
	for _, c := range []struct {
		stop string
		want []int
	}{{"applicant", []int{0, 0, 0, 0, 0}}, {"vehicle", []int{1, 0, 0, 0, 0}}} {
		t.Run(c.stop, func(t *testing.T) {
			r := at(t, nil, 3, 1, c.stop)
			var got []int
			var errs []error
			probe := model.NewRegistry().MustMigrate(quote3, quote4, func(in *model.Instance) error {
				for _, path := range []string{"contact", "vehicle", "nothing", "drivers", "options/cover"} {
					n, err := in.Insert(path, nil)
					got, errs = append(got, n), append(errs, err)
				}
				return errors.New("only probing")
			})
			_, _, err := model.NewEngine(probe, modeltest.Resolver()).Migrate(ctx, r, all)
			if !errors.Is(err, model.ErrMigration) || !strings.Contains(err.Error(), string(r.ID())) || !strings.Contains(err.Error(), "only probing") {
				t.Fatalf("err %v", err)
			}
			if !slices.Equal(got, c.want) || errs[0] != nil || errs[1] != nil || errs[2] == nil || errs[3] == nil || errs[4] == nil {
				t.Fatalf("inserted %v, errors %v", got, errs)
			}
		})
	}
}

func TestMigrateRefusesWhatDoesNotFit(t *testing.T) {
	r := at(t, modeltest.Engine(), 4, 2, "drivers/driver/more")
	cases := []struct {
		name string
		fn   model.MigrateFunc
		want error
	}{
		{"an error", func(*model.Instance) error { return errors.New("no") }, nil},
		{"a panic", func(*model.Instance) error { panic("boom") }, nil},
		{"nothing done: a field the new version lacks", func(*model.Instance) error { return nil }, model.ErrUnknownStep},
		{"contact not inserted", func(in *model.Instance) error {
			for _, a := range in.Steps("applicant") {
				a.Params.Delete("name")
				a.Params.Delete("email")
			}
			return nil
		}, model.ErrCorruptSession},
		{"a value of the wrong type", func(in *model.Instance) error {
			if err := up34(in); err != nil {
				return err
			}
			in.Steps("applicant")[0].Params.Set("first", model.IntVal(7))
			return nil
		}, model.ErrUnknownStep},
		{"a tree broken by hand", func(in *model.Instance) error {
			if err := up34(in); err != nil {
				return err
			}
			in.Steps("vehicle")[0].Parent = 999
			return nil
		}, model.ErrCorruptSession},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := model.NewRegistry().MustRegister(quote3, quote4).MustMigrate(quote3, quote4, c.fn)
			_, _, err := model.NewEngine(reg, modeltest.Resolver()).Migrate(ctx, r, all)
			var se *model.StepError
			if !errors.Is(err, model.ErrMigration) || !errors.As(err, &se) || se.Session != r.ID() {
				t.Fatalf("err %v, want ErrMigration naming the session", err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

// genRun draws a quote@3 session: any number of drivers, stopped at any
// page or finished.
func genRun(t *rapid.T, eng *model.Engine) (*model.Run, int) {
	drivers := rapid.IntRange(1, 4).Draw(t, "drivers")
	stop := rapid.SampledFrom([]string{"applicant", "vehicle", "drivers/driver/who", "drivers/driver/more",
		"extras/cover", "payment/method", "payment/card/details", "confirm", ""}).Draw(t, "stop")
	r := at(t, eng, rapid.IntRange(0, 1<<20).Draw(t, "id"), drivers, stop)
	return r, drivers
}

// TestMigrateProperties: whatever the session and whatever the members
// accept, a migration leaves the run it was given alone, is deterministic,
// keeps the session's stamps, lands on the version Target names, fits that
// version (a backup materializes it to the same session, and it runs to
// the end), and a chain is the same as its links one after the other.
func TestMigrateProperties(t *testing.T) {
	reg := migrations()
	eng := model.NewEngine(reg, modeltest.Resolver())
	rapid.Check(t, func(t *rapid.T) {
		r, drivers := genRun(t, eng)
		accept := rapid.SliceOfDistinct(rapid.IntRange(3, 5), rapid.ID).Draw(t, "versions accepted")
		ok := only(accept...)
		before := r.Session().Clone()
		next, _, err := eng.Migrate(ctx, r, ok)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Session().Equal(before) {
			t.Fatal("the run given changed")
		}
		again, _, err := eng.Migrate(ctx, r, ok)
		if err != nil || !again.Session().Equal(next.Session()) {
			t.Fatalf("not deterministic: %v", err)
		}
		s := next.Session()
		if want := reg.Target("car-quote", 3, ok); s.Version != want {
			t.Fatalf("version %d, target %d", s.Version, want)
		}
		if s.ID != before.ID || s.Seq != before.Seq || s.Epoch != before.Epoch || s.Node != before.Node ||
			!s.Created.Equal(before.Created) || !s.Updated.Equal(before.Updated) || s.NextID < before.NextID {
			t.Fatal("stamps changed")
		}
		back, err := eng.Materialize(ctx, s)
		if err != nil || !back.Session().Equal(s) {
			t.Fatalf("the migrated session does not materialize as it is: %v", err)
		}
		if s.Version >= 4 && !r.Finished() {
			// The name and the email survive, where they were given.
			a, old := next.Values().Key("applicant"), r.Values().Key("applicant")
			if name := old.Key("name"); !name.IsNull() && strings.TrimSpace(a.Key("first").Str()+" "+a.Key("last").Str()) != name.Str() {
				t.Fatalf("name %q became %v", name.Str(), a)
			}
			if email := old.Key("email"); !email.IsNull() && !next.Values().Key("contact").Key("email").Equal(email) {
				t.Fatalf("email %v lost: %v", email, next.Values())
			}
		}
		if s.Version == 5 {
			// The chain 3 to 4 to 5 is its two links.
			mid, _, err := eng.Migrate(ctx, r, only(3, 4))
			if err != nil {
				t.Fatal(err)
			}
			end, _, err := eng.Migrate(ctx, mid, all)
			if err != nil || !end.Session().Equal(s) {
				t.Fatalf("3 to 5 in one go differs from 3 to 4 to 5: %v", err)
			}
		}
		finish(t, eng, next, drivers)
	})
}

// TestMigrateRoundTrip: there and back again (3 to 4 to 3) gives the
// session's values and page back.
func TestMigrateRoundTrip(t *testing.T) {
	eng := model.NewEngine(migrations(), modeltest.Resolver())
	rapid.Check(t, func(t *rapid.T) {
		r, _ := genRun(t, eng)
		quote := func(versions ...int) func(string, int) bool {
			return func(name string, v int) bool {
				return name == "car-quote" && slices.Contains(versions, v) || name != "car-quote" && v < 3
			}
		}
		there, _, err := eng.Migrate(ctx, r, quote(3, 4))
		if err != nil {
			t.Fatal(err)
		}
		back, ups, err := eng.Migrate(ctx, there, quote(3))
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 1 || ups[0].From != 4 || ups[0].To != 3 {
			t.Fatalf("upgrades back %v", ups)
		}
		if !back.Values().Equal(r.Values()) {
			t.Fatalf("values differ after a round trip:\n%v\n%v", back.Values(), r.Values())
		}
		if !r.Finished() {
			a, err := eng.Page(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			b, err := eng.Page(ctx, back)
			if err != nil {
				t.Fatal(err)
			}
			if a.Step != b.Step || a.Seq != b.Seq {
				t.Fatalf("page %s@%d, back at %s@%d", a.Step, a.Seq, b.Step, b.Seq)
			}
		}
	})
}
