package model_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"understudy/model"
	"understudy/model/modeltest"
)

// midway is a quote waiting in the card application, three applications
// deep.
func midway(t *testing.T) (*model.Engine, *model.Run) {
	t.Helper()
	eng := modeltest.Engine()
	run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(10), 3, "payment/card/details")
	if err != nil {
		t.Fatal(err)
	}
	return eng, run
}

func TestMaterializeResumes(t *testing.T) {
	eng, run := midway(t)
	back, err := eng.Materialize(ctx, run.Session())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Session().Equal(run.Session()) {
		t.Fatal("materialized session differs")
	}
	a, b := page(t, eng, run), page(t, eng, back)
	if a.Step != b.Step || a.StepApp != "card@1" || a.Seq != b.Seq || !a.Values.Equal(b.Values) {
		t.Fatalf("pages differ: %s@%d %s vs %s@%d", a.Step, a.Seq, a.StepApp, b.Step, b.Seq)
	}
	// Both finish the same way.
	finish := func(r *model.Run) *model.Session {
		for !r.Finished() {
			pg := page(t, eng, r)
			r = submit(t, eng, r, modeltest.Answers(pg.Step, 3, 3))
		}
		return r.Session()
	}
	if !finish(run).Equal(finish(back)) {
		t.Fatal("the materialized run finished differently")
	}
}

// corrupt returns a copy of s changed by f.
func corrupt(s *model.Session, f func(s *model.Session)) *model.Session {
	c := s.Clone()
	f(c)
	return c
}

func firstID[V any](m map[model.StepID]V, ok func(V) bool) model.StepID {
	for _, id := range slices.Sorted(maps.Keys(m)) {
		if ok(m[id]) {
			return id
		}
	}
	panic("none")
}

func TestMaterializeRefuses(t *testing.T) {
	eng, run := midway(t)
	s := run.Session()
	applicant := firstID(s.Pool.Interactive, func(st *model.InteractiveState) bool { return st.Path == "applicant" })
	drivers := firstID(s.Pool.Composite, func(st *model.CompositeState) bool { return st.Path == "drivers" })
	price := firstID(s.Pool.Simple, func(st *model.SimpleState) bool { return st.Path == "price" })
	call := firstID(s.Pool.Application, func(st *model.ApplicationState) bool { return st.Path == "payment" })

	cases := []struct {
		name string
		s    *model.Session
		want error
		text string
	}{
		{"unknown app", corrupt(s, func(s *model.Session) { s.App = "bike-quote" }), model.ErrUnknownApp, "bike-quote"},
		{"unknown version", corrupt(s, func(s *model.Session) { s.Version = 9 }), model.ErrUnknownVersion, "car-quote@9"},
		{"unknown callee version", corrupt(s, func(s *model.Session) { s.Pool.Application[call].Version = 5 }), model.ErrUnknownVersion, "payment@5"},
		{"callee swapped", corrupt(s, func(s *model.Session) { s.Pool.Application[call].App = "card" }), model.ErrUnknownStep, `step "payment"`},
		{"unknown step", corrupt(s, func(s *model.Session) { s.Pool.Interactive[applicant].Path = "applicant2" }), model.ErrUnknownStep, "applicant2"},
		{"wrong kind", corrupt(s, func(s *model.Session) {
			st := s.Pool.Interactive[applicant]
			delete(s.Pool.Interactive, applicant)
			s.Pool.Simple[applicant] = &model.SimpleState{StepState: st.StepState}
		}), model.ErrUnknownStep, "simple in the session"},
		{"field of the wrong type", corrupt(s, func(s *model.Session) {
			s.Pool.Interactive[applicant].Params.Set("born", model.StringVal("yesterday"))
		}), model.ErrUnknownStep, "field born holds string"},
		{"unknown field", corrupt(s, func(s *model.Session) {
			s.Pool.Interactive[applicant].Params.Set("password", model.StringVal("x"))
		}), model.ErrUnknownStep, "no field"},
		{"missing child", corrupt(s, func(s *model.Session) { delete(s.Pool.Simple, price) }), model.ErrCorruptSession, "missing"},
		{"child twice", corrupt(s, func(s *model.Session) {
			c := s.Pool.Composite[drivers]
			c.Children = append(c.Children[:1], c.Children...)
		}), model.ErrCorruptSession, "reached twice"},
		{"cycle", corrupt(s, func(s *model.Session) {
			c := s.Pool.Composite[drivers]
			c.Children[0] = s.Root
		}), model.ErrCorruptSession, "reached twice"},
		{"orphan", corrupt(s, func(s *model.Session) {
			s.Pool.Simple[s.NextID] = &model.SimpleState{StepState: model.StepState{Path: "price"}}
			s.NextID++
		}), model.ErrCorruptSession, "not reachable"},
		{"next id reused", corrupt(s, func(s *model.Session) { s.NextID = 3 }), model.ErrCorruptSession, "next id"},
		{"running before the cursor", corrupt(s, func(s *model.Session) {
			s.Pool.Interactive[applicant].Done = false
		}), model.ErrCorruptSession, "before the cursor"},
		{"too many iterations", corrupt(s, func(s *model.Session) {
			c := s.Pool.Composite[drivers]
			for range 12 {
				c.Children = append(c.Children, c.Children[0])
			}
		}), model.ErrCorruptSession, "iterations"},
		{"bad id", corrupt(s, func(s *model.Session) { s.ID = "a.b.>" }), model.ErrBadSessionID, `"a.b.>"`},
		{"nothing waiting", corrupt(s, func(s *model.Session) {
			for _, st := range s.Pool.Interactive {
				st.Done = true
			}
		}), model.ErrCorruptSession, "no page is waiting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := eng.Materialize(ctx, c.s)
			if !errors.Is(err, c.want) || r != nil {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("error %q does not say %q", err, c.text)
			}
			if c.want != model.ErrBadSessionID && !strings.Contains(err.Error(), string(s.ID)) {
				t.Errorf("error %q does not name the session", err)
			}
		})
	}
	if _, err := eng.Materialize(ctx, s); err != nil {
		t.Fatalf("the original no longer materializes: %v", err)
	}
}

func TestMaterializeUnresolved(t *testing.T) {
	_, run := midway(t)
	empty := model.NewEngine(modeltest.Registry(), model.NewMemResolver())
	_, err := empty.Materialize(ctx, run.Session())
	if !errors.Is(err, model.ErrUnresolved) || !strings.Contains(err.Error(), string(run.ID())) || !strings.Contains(err.Error(), "vehicle") {
		t.Fatalf("got %v, want ErrUnresolved naming the session and step", err)
	}
}

func TestMaterializeStaleEntities(t *testing.T) {
	_, run := midway(t)

	// A provider changed: its field reloads, and says so.
	res := modeltest.Resolver()
	res.Put(&model.Record{Ref: model.Ref{Type: "providers", ID: "acme", Version: 8}, Label: "ACME Pay"})
	eng := model.NewEngine(modeltest.Registry(), res)
	back, err := eng.Materialize(ctx, run.Session())
	if err != nil {
		t.Fatal(err)
	}
	if st := back.Stale(); len(st) != 1 || st[0].Action != model.Reload || st[0].New.Version != 8 || st[0].Path != "payment/method" {
		t.Fatalf("stale %+v", st)
	}
	if got := back.Values().Key("payment").Key("method").Key("provider").String(); got != "providers/acme@8" {
		t.Errorf("provider after reload: %s", got)
	}
	if back.Seq() != run.Seq() {
		t.Error("a reload moved the sequence")
	}

	// The car changed: the user is sent back to choose it again.
	res = modeltest.Resolver()
	v := modeltest.Vehicles()[0].(*model.Record)
	res.Put(&model.Record{Ref: model.Ref{Type: "vehicles", ID: "v1", Version: 2}, Label: v.Label, Fields: v.Fields})
	eng = model.NewEngine(modeltest.Registry(), res)
	back, err = eng.Materialize(ctx, run.Session())
	if err != nil {
		t.Fatal(err)
	}
	if st := back.Stale(); len(st) != 1 || st[0].Action != model.Reselect {
		t.Fatalf("stale %+v", st)
	}
	pg := page(t, eng, back)
	if pg.Step != "vehicle" || pg.Seq != run.Seq()+1 {
		t.Fatalf("sent back to %s at %d, want vehicle at %d", pg.Step, pg.Seq, run.Seq()+1)
	}
	if back.Values().Key("drivers").Len() != 0 {
		t.Error("steps after the reselected one were kept")
	}
	// The old page can no longer be submitted; the reselect page can, and
	// the run then continues.
	if _, err := eng.Submit(ctx, back, model.Input{Seq: run.Seq()}); !errors.Is(err, model.ErrStaleInteraction) {
		t.Errorf("old page submitted: %v", err)
	}
	next := submit(t, eng, back, modeltest.Answers("vehicle", 1, 0))
	if pg := page(t, eng, next); pg.Step != "drivers/driver/who" {
		t.Errorf("after reselecting: %s", pg.Step)
	}
	if _, err := eng.Materialize(ctx, back.Session()); err != nil {
		t.Errorf("a rewound session does not materialize: %v", err)
	}
}
