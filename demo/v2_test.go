package demo_test

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"understudy/demo"
	"understudy/model"
)

// v2Answers are the demo's answers, the name also given apart for the
// applicant page of version 2.
func v2Answers(step string, i, visit, drivers int) url.Values {
	if step == demo.StepDriver {
		return demo.DriverAnswers(i, visit, visit < drivers-1)
	}
	v := demo.Answers(step, i)
	if step == demo.StepApplicant {
		first, last := demo.SplitName(v.Get("name"))
		v.Set("first", first)
		v.Set("last", last)
	}
	return v
}

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// drive starts customer i's quote at version (0: the newest) and answers
// pages until the one at stop waits ("" runs to the end).
func drive(t tb, ctx context.Context, eng *model.Engine, i, version, drivers int, stop string) *model.Run {
	t.Helper()
	var id [16]byte
	id[0], id[1], id[15] = byte(i), byte(i>>8), 0x77
	run, err := eng.Start(ctx, model.Begin{App: demo.AppName, Version: version, Session: model.NewSessionID(id), Now: epoch, Node: "n1", Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	return walk(t, ctx, eng, run, i, drivers, stop)
}

func walk(t tb, ctx context.Context, eng *model.Engine, run *model.Run, i, drivers int, stop string) *model.Run {
	t.Helper()
	visits := map[string]int{}
	for range 50 {
		pg, err := eng.Page(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if pg.Finished || pg.Step == stop {
			return run
		}
		form := v2Answers(pg.Step, i, visits[pg.Step], drivers)
		visits[pg.Step]++
		if run, err = eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: form, Now: epoch.Add(time.Hour), Node: "n1", Epoch: 1}); err != nil {
			t.Fatalf("page %s: %v", pg.Step, err)
		}
	}
	t.Fatal("no end after 50 pages")
	return nil
}

func TestReleases(t *testing.T) {
	for _, name := range demo.Releases {
		reg, err := demo.Release(name)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]int{demo.ReleaseV1: {1}, demo.ReleaseV2: {1, 2}}[name]
		if got := reg.Versions(demo.AppName); !slices.Equal(got, want) {
			t.Errorf("release %s: versions %v, want %v", name, got, want)
		}
	}
	if _, err := demo.Release("v3"); err == nil {
		t.Error("release v3 exists")
	}
	if n := len(demo.RegistryV2().Migrations()); n != 2 {
		t.Errorf("%d migrations, want 1 to 2 and back", n)
	}
}

func TestSplitName(t *testing.T) {
	for _, c := range []struct{ name, first, last string }{
		{"Ada Lovelace", "Ada", "Lovelace"},
		{"Karen Spärck Jones", "Karen Spärck", "Jones"},
		{"Tim Berners-Lee", "Tim", "Berners-Lee"},
		{"Cher", "", "Cher"},
		{"  Alan   Turing ", "Alan", "Turing"},
		{"", "", ""},
	} {
		first, last := demo.SplitName(c.name)
		if first != c.first || last != c.last {
			t.Errorf("SplitName(%q) = %q, %q; want %q, %q", c.name, first, last, c.first, c.last)
		}
		if back := demo.JoinName(first, last); c.name != "" && back != demo.JoinName(demo.SplitName(back)) {
			t.Errorf("JoinName(%q, %q) = %q does not split back", first, last, back)
		}
	}
}

// TestV2FromTheStart: a quote started on version 2 asks for the name in
// two fields and runs to the policy.
func TestV2FromTheStart(t *testing.T) {
	eng := model.NewEngine(demo.RegistryV2(), demo.Resolver())
	run := drive(t, t.Context(), eng, 2, 0, 2, demo.StepApplicant)
	if run.Session().Version != demo.AppVersion2 {
		t.Fatalf("started at version %d", run.Session().Version)
	}
	pg, err := eng.Page(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range pg.Fields {
		names = append(names, f.Name)
	}
	if !slices.Contains(names, "first") || !slices.Contains(names, "last") || slices.Contains(names, "name") {
		t.Fatalf("applicant fields %v", names)
	}
	run = walk(t, t.Context(), eng, run, 2, 2, "")
	a := run.Values().Key("applicant")
	if a.Key("first").Str() != "Grace" || a.Key("last").Str() != "Hopper" || !run.Finished() {
		t.Fatalf("applicant %v, finished %v", a, run.Finished())
	}
}

// TestV1SessionsMigrate: a quote of the first release, stopped at any
// page, moves to version 2 with its name apart, fits version 2, runs to
// the end there, and comes back to version 1 exactly.
func TestV1SessionsMigrate(t *testing.T) {
	v1 := model.NewEngine(demo.Registry(), demo.Resolver())
	v2 := model.NewEngine(demo.RegistryV2(), demo.Resolver())
	ctx := t.Context()
	pages := []string{demo.StepApplicant, demo.StepVehicle, demo.StepDriver, demo.StepCover, demo.StepAddons,
		demo.StepMethod, demo.StepCard, demo.StepConfirm, ""}
	rapid.Check(t, func(rt *rapid.T) {
		i := rapid.IntRange(0, 50).Draw(rt, "customer")
		drivers := rapid.IntRange(1, demo.MaxDrivers).Draw(rt, "drivers")
		stop := rapid.SampledFrom(pages).Draw(rt, "stop")
		old := drive(rt, ctx, v1, i, 0, drivers, stop)

		up, ups, err := v2.Migrate(ctx, old, func(string, int) bool { return true })
		if err != nil {
			rt.Fatal(err)
		}
		if up.Session().Version != demo.AppVersion2 || len(ups) != 1 || ups[0].From != 1 {
			rt.Fatalf("version %d, upgrades %v", up.Session().Version, ups)
		}
		back, err := v2.Materialize(ctx, up.Session())
		if err != nil || !back.Session().Equal(up.Session()) {
			rt.Fatalf("the migrated session does not materialize as it is: %v", err)
		}
		name := old.Values().Key("applicant").Key("name")
		a := up.Values().Key("applicant")
		if !name.IsNull() && demo.JoinName(a.Key("first").Str(), a.Key("last").Str()) != name.Str() {
			rt.Fatalf("name %v became %v", name, a)
		}
		if !old.Finished() {
			p1, _ := v1.Page(ctx, old)
			p2, _ := v2.Page(ctx, up)
			if p1.Step != p2.Step || p1.Seq != p2.Seq {
				rt.Fatalf("page %s@%d became %s@%d", p1.Step, p1.Seq, p2.Step, p2.Seq)
			}
		}

		down, _, err := v2.Migrate(ctx, up, func(_ string, v int) bool { return v == demo.AppVersion })
		if err != nil {
			rt.Fatal(err)
		}
		if down.Session().Version != demo.AppVersion || !down.Values().Equal(old.Values()) {
			rt.Fatalf("back at version %d: values differ", down.Session().Version)
		}
		if _, err := v1.Materialize(ctx, down.Session()); err != nil {
			rt.Fatalf("a node of the first release cannot rebuild it: %v", err)
		}
		if end := walk(rt, ctx, v2, up, i, drivers, ""); !end.Finished() {
			rt.Fatal("the migrated quote did not finish")
		}
	})
}
