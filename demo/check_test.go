package demo_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"understudy/demo"
	"understudy/model"
)

// back steps back from the waiting page, as the page's Back link does.
func (s *session) back() {
	s.t.Helper()
	s.now = s.now.Add(30 * time.Second)
	next, err := s.eng.Back(s.t.Context(), s.run, model.Input{Seq: s.run.Seq(), Now: s.now, Node: "n1", Epoch: 1})
	if err != nil {
		s.t.Fatalf("back from %s: %v", s.page().Step, err)
	}
	s.run = next
}

// change follows the Change link of the check page's section titled title.
func (s *session) change(title string) {
	s.t.Helper()
	pg := s.page()
	for _, sec := range pg.Review {
		if sec.Title == title {
			s.now = s.now.Add(30 * time.Second)
			next, err := s.eng.Change(s.t.Context(), s.run, model.Input{Seq: s.run.Seq(), Now: s.now, Node: "n1", Epoch: 1}, sec.Change)
			if err != nil {
				s.t.Fatalf("change %s: %v", title, err)
			}
			s.run = next
			return
		}
	}
	s.t.Fatalf("no section %q on %s: %v", title, pg.Step, titles(pg.Review))
}

func titles(as []model.Answered) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Title)
	}
	return out
}

func shown(pg *model.Page, label string) string {
	for _, d := range pg.Display {
		if d.Label == label {
			return d.Value
		}
	}
	return ""
}

// TestCheckPage: before paying, the quote lists every page answered, in
// sections, with its price; the "add another driver" tick box is not an
// answer.
func TestCheckPage(t *testing.T) {
	s := start(t, memEngine(), 1).until(demo.StepCheck, answers(0, 2))
	pg := s.page()
	want := []string{"About you", "Your car", "Drivers (1)", "Drivers (2)", "Your cover", "Optional extras"}
	if got := titles(pg.Review); !slices.Equal(got, want) {
		t.Fatalf("sections %q, want %q", got, want)
	}
	for _, sec := range pg.Review {
		for _, f := range sec.Fields {
			if f.Name == "another" {
				t.Errorf("section %s lists the add-another tick box", sec.Title)
			}
			if f.Name == "born" && f.Value != "10 December 1985" && sec.Title != "Drivers (2)" {
				t.Errorf("%s: date of birth shown as %q", sec.Title, f.Value)
			}
		}
	}
	if got := shown(pg, "Your price for the year"); got != "£"+s.value("total.annual").String() || !strings.HasPrefix(got, "£") {
		t.Errorf("price shown %q, total %v", got, s.value("total.annual"))
	}
	if !pg.Back {
		t.Error("no way back from the check page")
	}
}

// TestChangeReturnsToTheCheckPage: a Change link goes to its page with the
// answers filled in; once answered, the user is back on the check page,
// the pages between answered again for them and the price worked out
// afresh. A page the change brings in waits for the user on the way.
func TestChangeReturnsToTheCheckPage(t *testing.T) {
	t.Run("a cheaper cover skips the extras", func(t *testing.T) {
		s := start(t, memEngine(), 2).until(demo.StepCheck, answers(0, 2))
		before := s.value("total.annual").String()
		seq := s.run.Seq()
		s.change("Your cover")
		pg := s.page()
		if pg.Step != demo.StepCover || s.run.Seq() != seq+1 {
			t.Fatalf("change went to %s at seq %d", pg.Step, s.run.Seq())
		}
		for _, f := range pg.Fields {
			if want := demo.Answers(demo.StepCover, 0).Get(f.Name); f.Value != want {
				t.Errorf("field %s holds %q, want the earlier answer %q", f.Name, f.Value, want)
			}
		}
		form := demo.Answers(demo.StepCover, 0)
		form.Set("level", "tpo")
		if err := s.submit(form); err != nil {
			t.Fatal(err)
		}
		pg = s.page()
		if pg.Step != demo.StepCheck {
			t.Fatalf("after the change the user is at %s, want the check page", pg.Step)
		}
		if got := titles(pg.Review); slices.Contains(got, "Optional extras") || !slices.Contains(got, "Drivers (2)") {
			t.Errorf("sections after the change: %q", got)
		}
		if after := s.value("total.annual").String(); decimal(t, after) >= decimal(t, before) {
			t.Errorf("third party only costs %s, comprehensive with extras %s", after, before)
		}
	})
	t.Run("drivers are answered again", func(t *testing.T) {
		s := start(t, memEngine(), 3).until(demo.StepCheck, answers(0, 3))
		s.change("Drivers (1)")
		if pg := s.page(); pg.Step != demo.StepDriver || pg.Iteration != 1 {
			t.Fatalf("at %s (%d)", pg.Step, pg.Iteration)
		}
		form := demo.DriverAnswers(0, 0, true)
		form.Set("claims", "2")
		if err := s.submit(form); err != nil {
			t.Fatal(err)
		}
		if pg := s.page(); pg.Step != demo.StepCheck {
			t.Fatalf("at %s, want the check page", pg.Step)
		}
		drivers := s.value("drivers").List()
		if len(drivers) != 3 || drivers[0].Key("claims").Int() != 2 || drivers[2].Key("name").Str() != demo.DriverAnswers(0, 2, false).Get("name") {
			t.Errorf("drivers after the change: %v", s.value("drivers"))
		}
	})
	t.Run("a page never answered waits", func(t *testing.T) {
		third := func(step string, visit int) url.Values {
			v := answers(0, 1)(step, visit)
			if step == demo.StepCover {
				v.Set("level", "tpft")
			}
			return v
		}
		s := start(t, memEngine(), 4).until(demo.StepCheck, third)
		s.change("Your cover")
		if err := s.submit(demo.Answers(demo.StepCover, 0)); err != nil { // comprehensive
			t.Fatal(err)
		}
		if pg := s.page(); pg.Step != demo.StepAddons || pg.Back != true {
			t.Fatalf("at %s, want the extras page the new cover offers", pg.Step)
		}
		if err := s.submit(demo.Answers(demo.StepAddons, 0)); err != nil {
			t.Fatal(err)
		}
		if pg := s.page(); pg.Step != demo.StepCheck {
			t.Fatalf("at %s, want the check page", pg.Step)
		}
	})
	t.Run("back from the changed page", func(t *testing.T) {
		s := start(t, memEngine(), 5).until(demo.StepCheck, answers(0, 1))
		want := s.run.Values()
		s.change("About you")
		s.back()
		if pg := s.page(); pg.Step != demo.StepCheck {
			t.Fatalf("back from a page being changed goes to %s, want the check page", pg.Step)
		}
		got := s.run.Values()
		if !got.Key("applicant").Equal(want.Key("applicant")) || !got.Key("drivers").Equal(want.Key("drivers")) {
			t.Errorf("answers changed by going there and back:\n%v\n%v", want, got)
		}
	})
}

// TestBack: Back returns to the page before, answers filled in; the pages
// after it are remembered and filled in again when the user gets there.
func TestBack(t *testing.T) {
	s := start(t, memEngine(), 6).until(demo.StepCover, answers(0, 2))
	if pg := s.page(); !pg.Back {
		t.Fatal("no Back on the cover page")
	}
	s.back()
	pg := s.page()
	if pg.Step != demo.StepDriver || pg.Iteration != 2 {
		t.Fatalf("back from cover: %s (%d)", pg.Step, pg.Iteration)
	}
	for _, f := range pg.Fields {
		if want := demo.DriverAnswers(0, 1, false).Get(f.Name); f.Value != want && f.Name != "born" {
			t.Errorf("driver 2's %s holds %q, want %q", f.Name, f.Value, want)
		}
	}
	s.back()
	s.back()
	s.back()
	if pg := s.page(); pg.Step != demo.StepApplicant || pg.Back {
		t.Fatalf("four steps back: %s, back %v", pg.Step, pg.Back)
	}
	seq := s.run.Seq()
	_, err := s.eng.Back(t.Context(), s.run, model.Input{Seq: seq, Now: s.now})
	if !errors.Is(err, model.ErrCannotMove) {
		t.Errorf("back from the first page: %v", err)
	}
	// Forward again: every page is filled in as it was.
	for _, step := range []string{demo.StepApplicant, demo.StepVehicle, demo.StepDriver} {
		pg := s.page()
		if pg.Step != step {
			t.Fatalf("at %s, want %s", pg.Step, step)
		}
		form := url.Values{}
		for _, f := range pg.Fields {
			if f.Value != "" {
				form.Set(f.Name, f.Value)
			}
		}
		if err := s.submit(form); err != nil {
			t.Fatalf("%s as it was filled in: %v", step, err)
		}
	}
	if pg := s.page(); pg.Step != demo.StepDriver || pg.Iteration != 2 || pg.Fields[0].Value != demo.DriverAnswers(0, 1, false).Get("name") {
		t.Errorf("second driver's page: %s (%d) %+v", pg.Step, pg.Iteration, pg.Fields[0])
	}
	// A stale Back (from a page shown before) is refused like any stale form.
	if _, err := s.eng.Back(t.Context(), s.run, model.Input{Seq: seq, Now: s.now}); !errors.Is(err, model.ErrStaleInteraction) {
		t.Errorf("stale back: %v", err)
	}
}

// TestCardExpiry: a card is valid to the end of the month printed on it,
// judged at the time of the interaction.
func TestCardExpiry(t *testing.T) {
	s := start(t, memEngine(), 7).until(demo.StepCard, answers(0, 1))
	if s.now.Month() != time.November || s.now.Year() != 2026 {
		t.Fatalf("the test assumes November 2026, the session is at %s", s.now)
	}
	form := demo.Answers(demo.StepCard, 0)
	form.Set("expiry", "11/26")
	if err := s.submit(form); err != nil {
		t.Errorf("a card expiring this month: %v", err)
	}
}

// TestSummary: the finished quote shows its policy number and what happens
// next; its answers are in words (dates for people, no add-another box).
func TestSummary(t *testing.T) {
	s := start(t, memEngine(), 8).until("", answers(0, 2))
	pg := s.page()
	if pg.StepTitle != "Your car is insured" || shown(pg, "Policy number") != s.value("policy.number").Str() || len(pg.Next) == 0 {
		t.Errorf("finished page: %q, display %+v, next %q", pg.StepTitle, pg.Display, pg.Next)
	}
	if got := shown(pg, "Cover starts"); got != "25 November 2026" {
		t.Errorf("cover starts %q", got)
	}
	for _, a := range s.eng.Answers(t.Context(), s.run) {
		for _, f := range a.Fields {
			if f.Name == "another" {
				t.Errorf("%s lists the add-another tick box", a.Title)
			}
			if strings.Contains(f.Value, "1985-12-10") {
				t.Errorf("%s shows an ISO date: %s", a.Title, f.Value)
			}
		}
	}
}
