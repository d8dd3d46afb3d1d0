package model_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"understudy/cbor"
	"understudy/model"
)

// tripApp is a small flow with every construct a step back crosses: a
// repeat, a branch, a simple step, a called application and a review.
func tripApp() *model.Registry {
	card := model.App("card", 1, model.Interactive("number", model.Text("number").Required()))
	return model.NewRegistry().MustRegister(model.App("trip", 1,
		model.Interactive("who", model.Text("name").Required(), model.Date("born")),
		model.Repeat("legs", model.Interactive("leg", model.Text("to").Required(), model.Bool("more").FlowControl()), model.While("more")).Max(4),
		model.Interactive("class", model.Choice("class", model.Opt("economy", "Economy"), model.Opt("first", "First")).Required()),
		model.If("lounge", model.Equals("class.class", model.StringVal("first")),
			model.Interactive("lounge", model.Bool("spa"))),
		model.Simple("price", func(ctx model.Context, st *model.State) error {
			p := int64(100 * st.Get("legs").Len())
			if st.Get("class.class").Str() == "first" {
				p *= 3
			}
			st.Set("total", model.IntVal(p))
			st.Set("key", model.StringVal(ctx.Key("quote")))
			return nil
		}),
		model.Review("check"),
		model.Call("pay", card),
		model.Interactive("done", model.Bool("agree").Required()),
	))
}

// tripAnswer is a valid answer to each page of the trip; i varies it.
func tripAnswer(step string, i int) url.Values {
	switch step {
	case "who":
		return url.Values{"name": {"Ada " + strconv.Itoa(i)}, "born": {"1985-12-10"}}
	case "legs/leg":
		v := url.Values{"to": {"City " + strconv.Itoa(i)}}
		if i%3 != 0 { // from the first answer (i = 0), three legs
			v.Set("more", "on")
		}
		return v
	case "class":
		return url.Values{"class": {[]string{"economy", "first"}[i%2]}}
	case "lounge/lounge":
		return url.Values{"spa": {"on"}}
	case "pay/number":
		return url.Values{"number": {"4111"}}
	case "done":
		return url.Values{"agree": {"on"}}
	}
	return url.Values{}
}

type trip struct {
	t   testing.TB
	eng *model.Engine
	run *model.Run
	now time.Time
}

func newTrip(t testing.TB) *trip {
	eng := model.NewEngine(tripApp(), nil)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	run, err := eng.Start(ctx, model.Begin{App: "trip", Session: model.NewSessionID([16]byte{7, 7}), Now: now, Node: "a", Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &trip{t: t, eng: eng, run: run, now: now}
}

func (tr *trip) page() *model.Page {
	pg, err := tr.eng.Page(ctx, tr.run)
	if err != nil {
		tr.t.Fatal(err)
	}
	return pg
}

func (tr *trip) in() model.Input {
	tr.now = tr.now.Add(time.Minute)
	return model.Input{Seq: tr.run.Seq(), Now: tr.now, Node: "a", Epoch: 1}
}

func (tr *trip) submit(v url.Values) {
	in := tr.in()
	in.Values = v
	next, err := tr.eng.Submit(ctx, tr.run, in)
	if err != nil {
		tr.t.Fatalf("submit %s: %v", tr.page().Step, err)
	}
	tr.run = next
}

func (tr *trip) back() error {
	next, err := tr.eng.Back(ctx, tr.run, tr.in())
	if err == nil {
		tr.run = next
	}
	return err
}

func (tr *trip) change(section string) error {
	next, err := tr.eng.Change(ctx, tr.run, tr.in(), section)
	if err == nil {
		tr.run = next
	}
	return err
}

// until answers pages with tripAnswer(step, i) until step stop waits.
func (tr *trip) until(stop string, i int) {
	for range 40 {
		pg := tr.page()
		if pg.Finished || pg.Step == stop {
			return
		}
		tr.submit(tripAnswer(pg.Step, i))
		i++
	}
	tr.t.Fatal("no end")
}

// formOf is what a page holds, as a browser would send it back.
func formOf(pg *model.Page) url.Values {
	v := url.Values{}
	for _, f := range pg.Fields {
		if f.Value != "" {
			v.Set(f.Name, f.Value)
		}
	}
	return v
}

func TestBackIsAnInteraction(t *testing.T) {
	tr := newTrip(t)
	tr.until("class", 0)
	before := tr.run
	if err := tr.back(); err != nil {
		t.Fatal(err)
	}
	pg := tr.page()
	if pg.Step != "legs/leg" || pg.Iteration != 3 || tr.run.Seq() != before.Seq()+1 {
		t.Fatalf("back from class: %s (%d) at seq %d", pg.Step, pg.Iteration, tr.run.Seq())
	}
	if pg.Fields[0].Value != "City 3" {
		t.Errorf("the page gone back to holds %q", pg.Fields[0].Value)
	}
	if p := page(t, tr.eng, before); p.Step != "class" || before.Seq() != 4 {
		t.Error("Back changed the run it was given")
	}
	if s := tr.run.Session(); !s.Updated.Equal(tr.now) || s.Node != "a" {
		t.Errorf("the step back is not stamped: %s %s", s.Updated, s.Node)
	}
	// Stale: a form of the page shown before the step back.
	if _, err := tr.eng.Back(ctx, tr.run, model.Input{Seq: before.Seq(), Now: tr.now}); !errors.Is(err, model.ErrStaleInteraction) {
		t.Errorf("stale back: %v", err)
	}
	if _, err := tr.eng.Submit(ctx, tr.run, model.Input{Seq: before.Seq(), Values: tripAnswer("class", 0), Now: tr.now}); !errors.Is(err, model.ErrStaleInteraction) {
		t.Errorf("a form of the page before the step back: %v", err)
	}
	// The remembered page is never in the values a client or a step sees.
	if strings.Contains(tr.run.Values().String(), "resume") {
		t.Errorf("values show the engine's memory: %v", tr.run.Values())
	}
	// Back to the first page, then no further.
	for tr.page().Back {
		if err := tr.back(); err != nil {
			t.Fatal(err)
		}
	}
	if pg := tr.page(); pg.Step != "who" || tr.run.Seq() != before.Seq()+4 {
		t.Fatalf("at %s seq %d", pg.Step, tr.run.Seq())
	}
	var se *model.StepError
	if err := tr.back(); !errors.Is(err, model.ErrCannotMove) || !errors.As(err, &se) || se.Session != tr.run.ID() {
		t.Errorf("back from the first page: %v", err)
	}
	// Forward with what each page holds: the same answers as before.
	for tr.page().Step != "class" {
		tr.submit(formOf(tr.page()))
	}
	if !tr.run.Values().Equal(before.Values()) {
		t.Errorf("forward again:\n%v\nbefore:\n%v", tr.run.Values(), before.Values())
	}
}

func TestChangeFromTheReview(t *testing.T) {
	tr := newTrip(t)
	tr.until("check", 0) // economy, three legs
	pg := tr.page()
	var titles []string
	for _, a := range pg.Review {
		titles = append(titles, a.Title)
	}
	if strings.Join(titles, ",") != "who,leg (1),leg (2),leg (3),class" {
		t.Fatalf("review sections %q", titles)
	}
	if err := tr.change("999"); !errors.Is(err, model.ErrCannotMove) {
		t.Errorf("change to a section the page does not list: %v", err)
	}
	oldKey := tr.run.Values().Key("price").Key("key").Str()

	// First class brings in the lounge page, which waits; then the review.
	if err := tr.change(pg.Review[4].Change); err != nil {
		t.Fatal(err)
	}
	if pg := tr.page(); pg.Step != "class" || pg.Fields[0].Value != "economy" {
		t.Fatalf("change went to %s holding %q", pg.Step, pg.Fields[0].Value)
	}
	tr.submit(url.Values{"class": {"first"}})
	if pg := tr.page(); pg.Step != "lounge/lounge" {
		t.Fatalf("after first class: %s", pg.Step)
	}
	tr.submit(url.Values{})
	if pg := tr.page(); pg.Step != "check" {
		t.Fatalf("after the lounge: %s", pg.Step)
	}
	v := tr.run.Values()
	if v.Key("price").Key("total").Int() != 900 || v.Key("legs").Len() != 3 || v.Key("price").Key("key").Str() == oldKey {
		t.Errorf("after the change: %v", v)
	}

	// A change only from the review.
	tr.submit(url.Values{})
	if err := tr.change(pg.Review[0].Change); !errors.Is(err, model.ErrCannotMove) {
		t.Errorf("change from the card page: %v", err)
	}
}

// TestMovesSurviveASnapshot: a step back or a change in the middle of
// being answered again is carried by the snapshot; a backup that
// materializes it finishes the same way.
func TestMovesSurviveASnapshot(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tr := newTrip(t)
		for i := range 30 {
			pg := tr.page()
			if pg.Finished {
				break
			}
			seq := tr.run.Seq()
			switch op := rapid.IntRange(0, 3).Draw(rt, "op"); {
			case op == 0 && pg.Back:
				if err := tr.back(); err != nil {
					rt.Fatalf("back from %s: %v", pg.Step, err)
				}
			case op == 1 && len(pg.Review) > 0:
				sec := rapid.SampledFrom(pg.Review).Draw(rt, "section")
				if err := tr.change(sec.Change); err != nil {
					rt.Fatalf("change %s: %v", sec.Title, err)
				}
			default:
				form := formOf(pg)
				if len(form) == 0 || rapid.Bool().Draw(rt, "new answers") {
					form = tripAnswer(pg.Step, i)
				}
				tr.submit(form)
			}
			if tr.run.Seq() != seq+1 {
				rt.Fatalf("a move took seq %d to %d", seq, tr.run.Seq())
			}
			// A backup takes over from the snapshot.
			b, err := cbor.Marshal(tr.run.Session())
			if err != nil {
				rt.Fatal(err)
			}
			s, err := cbor.Decode(b)
			if err != nil {
				rt.Fatal(err)
			}
			taken, err := tr.eng.Materialize(ctx, s)
			if err != nil {
				rt.Fatalf("materialize after %s: %v", pg.Step, err)
			}
			if !taken.Session().Equal(tr.run.Session()) {
				rt.Fatal("the snapshot differs from the session")
			}
			tr.run = taken
		}
		for i := 0; !tr.page().Finished; i++ {
			if i > 40 {
				rt.Fatal("no end")
			}
			tr.submit(tripAnswer(tr.page().Step, i))
		}
		if _, ok := tr.run.Session().Pool.Composite[tr.run.Session().Root].Params.Get(".resume"); ok {
			rt.Fatal("a finished session keeps what going back discarded")
		}
	})
}
