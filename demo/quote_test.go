package demo_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"understudy/cbor"
	"understudy/demo"
	"understudy/entity"
	"understudy/model"
)

var epoch = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

// session drives one quote through an engine, as a serving node would.
type session struct {
	t     *testing.T
	eng   *model.Engine
	run   *model.Run
	now   time.Time
	steps []string // the pages answered, in order
	forms []url.Values
}

func start(t *testing.T, eng *model.Engine, n int) *session {
	t.Helper()
	var id [16]byte
	id[0], id[15] = byte(n), byte(n>>8)
	run, err := eng.Start(t.Context(), model.Begin{App: demo.AppName, Session: model.NewSessionID(id), Now: epoch, Node: "n1", Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &session{t: t, eng: eng, run: run, now: epoch}
}

func (s *session) page() *model.Page {
	s.t.Helper()
	pg, err := s.eng.Page(s.t.Context(), s.run)
	if err != nil {
		s.t.Fatal(err)
	}
	return pg
}

// submit answers the waiting page; a refused answer leaves the run as it was.
func (s *session) submit(form url.Values) error {
	s.t.Helper()
	step := s.page().Step
	now := s.now.Add(90 * time.Second)
	next, err := s.eng.Submit(s.t.Context(), s.run, model.Input{Seq: s.run.Seq(), Values: form, Now: now, Node: "n1", Epoch: 1})
	if err != nil {
		return err
	}
	s.run, s.now = next, now
	s.steps = append(s.steps, step)
	s.forms = append(s.forms, form)
	return nil
}

// answers returns customer i's answers with the given number of drivers.
func answers(i, drivers int) func(step string, visit int) url.Values {
	return func(step string, visit int) url.Values {
		if step == demo.StepDriver {
			return demo.DriverAnswers(i, visit, visit < drivers-1)
		}
		return demo.Answers(step, i)
	}
}

// until answers pages until the one at stop waits ("" runs to the end).
func (s *session) until(stop string, answer func(step string, visit int) url.Values) *session {
	s.t.Helper()
	visits := map[string]int{}
	for range 50 {
		pg := s.page()
		if pg.Finished || pg.Step == stop {
			return s
		}
		form := answer(pg.Step, visits[pg.Step])
		visits[pg.Step]++
		if err := s.submit(form); err != nil {
			s.t.Fatalf("page %s: %v", pg.Step, err)
		}
	}
	s.t.Fatal("no end after 50 pages")
	return s
}

func (s *session) value(path string) model.Value {
	v := s.run.Values()
	for _, k := range strings.Split(path, ".") {
		v = v.Key(k)
	}
	return v
}

func memEngine() *model.Engine { return model.NewEngine(demo.Registry(), demo.Resolver()) }

func TestQuoteWithSQLite(t *testing.T) {
	store, err := entity.Open(t.Context(), entity.Config{
		DSN:  filepath.Join(t.TempDir(), "entities.db"),
		Seed: demo.Entities(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s := start(t, model.NewEngine(demo.Registry(), store), 1)

	vehicle := s.until(demo.StepVehicle, answers(0, 2)).page()
	var cars []string
	for _, o := range vehicle.Fields[0].Options {
		cars = append(cars, o.Label)
	}
	if len(cars) != 12 || cars[0] != "BMW 320d M Sport (2020)" || cars[11] != "Volvo XC40 B4 Plus (2021)" {
		t.Errorf("the car list, from the database: %q", cars)
	}

	s.until("", answers(0, 2))
	want := []string{demo.StepApplicant, demo.StepVehicle, demo.StepDriver, demo.StepDriver, demo.StepCover,
		demo.StepAddons, demo.StepCheck, demo.StepMethod, demo.StepCard, demo.StepConfirm}
	if !slices.Equal(s.steps, want) {
		t.Errorf("pages %q, want %q", s.steps, want)
	}
	if !s.run.Finished() {
		t.Fatal("not finished")
	}
	if got := s.value("policy.status").Str(); got != "active" {
		t.Errorf("policy status %q", got)
	}
	if got := s.value("payment.authorize.status").Str(); got != "authorized" {
		t.Errorf("payment status %q", got)
	}
	if ref, _ := s.value("vehicle.car").Ref(); ref != (model.Ref{Type: demo.VehicleType, ID: "bmw-320d", Version: 1}) {
		t.Errorf("car reference %v", ref)
	}
	if !s.value("policy.charged").Equal(s.value("payment.schedule.firstPayment")) {
		t.Errorf("charged %v, first payment %v", s.value("policy.charged"), s.value("payment.schedule.firstPayment"))
	}
}

func TestEveryCustomerFinishes(t *testing.T) {
	eng := memEngine()
	for i := range 14 {
		drivers := 1 + i%3
		s := start(t, eng, i).until("", answers(i, drivers))
		if !s.run.Finished() {
			t.Fatalf("customer %d did not finish", i)
		}
		comprehensive := s.value("cover.level").Str() == "comprehensive"
		if slices.Contains(s.steps, demo.StepAddons) != comprehensive {
			t.Errorf("customer %d: extras page shown %v with %s cover", i, !comprehensive, s.value("cover.level"))
		}
		if n := s.value("drivers").Len(); n != drivers {
			t.Errorf("customer %d: %d drivers, want %d", i, n, drivers)
		}
		if u, _ := s.value("total.annual").Decimal(); u < 150_00 {
			t.Errorf("customer %d: annual price %v", i, s.value("total.annual"))
		}
	}
}

func TestValidation(t *testing.T) {
	for _, c := range []struct {
		step, field, value, message string
	}{
		{demo.StepApplicant, "name", "", "required"},
		{demo.StepApplicant, "email", "ada@", "e-mail address"},
		{demo.StepApplicant, "email", "Ada <ada@example.com>", "e-mail address"},
		{demo.StepApplicant, "born", "2010-02-01", "at least 18"},
		{demo.StepApplicant, "born", "1985-13-01", "real date"},
		{demo.StepApplicant, "born", "1850-01-01", "after 1900"},
		{demo.StepApplicant, "phone", "call me", "phone number"},
		{demo.StepApplicant, "postcode", "12345", "UK postcode"},
		{demo.StepVehicle, "car", "trabant-601", "Choose one"},
		{demo.StepVehicle, "car", "", "required"},
		{demo.StepVehicle, "registration", "NO!", "number plate"},
		{demo.StepVehicle, "mileage", "-5", "At least 500"},
		{demo.StepVehicle, "mileage", "lots", "whole number"},
		{demo.StepVehicle, "use", "racing", "Choose one"},
		{demo.StepDriver, "born", "2011-01-01", "at least 17"},
		{demo.StepDriver, "licensed", "-1", "At least 0"},
		{demo.StepDriver, "claims", "11", "At most 10"},
		{demo.StepDriver, "relation", "", "required"},
		{demo.StepCover, "level", "platinum", "Choose one"},
		{demo.StepCover, "bonus", "-2", "At least 0"},
		{demo.StepAddons, "breakdown", "", "required"},
		{demo.StepMethod, "plan", "weekly", "Choose one"},
		{demo.StepMethod, "provider", "bitcoin", "Choose one"},
		{demo.StepCard, "number", "4111 1111", "too short"},
		{demo.StepCard, "number", "41111111111111111111", "too long"},
		{demo.StepCard, "number", "4111 1111 1111 1112", "not valid"},
		{demo.StepCard, "number", "4111-1111-abcd-1111", "digits only"},
		{demo.StepCard, "expiry", "13/29", "MM/YY"},
		{demo.StepCard, "expiry", "01/20", "expired"},
		{demo.StepCard, "expiry", "10/26", "expired"}, // the quote is answered in November 2026
		{demo.StepCard, "holder", " ", "required"},
		{demo.StepConfirm, "agree", "", "ticked"},
	} {
		t.Run(c.step+"/"+c.field+"="+c.value, func(t *testing.T) {
			s := start(t, memEngine(), 0).until(c.step, answers(0, 1))
			before := s.run
			form := answers(0, 1)(c.step, 0)
			form.Set(c.field, c.value)
			err := s.submit(form)
			var bad *model.InvalidInputError
			if !errors.As(err, &bad) {
				t.Fatalf("submit = %v, want an InvalidInputError", err)
			}
			if msg := bad.Fields[c.field]; !strings.Contains(strings.ToLower(msg), strings.ToLower(c.message)) {
				t.Errorf("message %q, want one saying %q (all: %v)", msg, c.message, bad.Fields)
			}
			if len(bad.Fields) != 1 {
				t.Errorf("more fields refused than the bad one: %v", bad.Fields)
			}
			if s.run != before || s.page().Step != c.step {
				t.Error("a refused answer moved the session on")
			}
			// The page shows the message, and the refused input to correct.
			pg := s.page()
			pg.Reject(bad)
			for _, f := range pg.Fields {
				if f.Name == c.field && (f.Error == "" || f.Value != c.value) {
					t.Errorf("page field %s: error %q, value %q", f.Name, f.Error, f.Value)
				}
			}
			if err := s.submit(answers(0, 1)(c.step, 0)); err != nil {
				t.Errorf("the corrected page was refused: %v", err)
			}
		})
	}
}

func TestDriversLoop(t *testing.T) {
	for _, c := range []struct {
		name    string
		answer  func(visit int) url.Values
		drivers int
	}{
		{"one", func(v int) url.Values { return demo.DriverAnswers(3, v, false) }, 1},
		{"three", func(v int) url.Values { return demo.DriverAnswers(3, v, v < 2) }, 3},
		{"always another stops at the maximum", func(v int) url.Values { return demo.DriverAnswers(3, v, true) }, demo.MaxDrivers},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, memEngine(), 3).until(demo.StepCover, func(step string, visit int) url.Values {
				if step == demo.StepDriver {
					return c.answer(visit)
				}
				return demo.Answers(step, 3)
			})
			drivers := s.value("drivers").List()
			if len(drivers) != c.drivers {
				t.Fatalf("%d drivers, want %d", len(drivers), c.drivers)
			}
			for k, d := range drivers {
				if want := demo.DriverAnswers(3, k, false).Get("name"); d.Key("name").Str() != want {
					t.Errorf("driver %d is %v, want %s", k, d.Key("name"), want)
				}
			}
			if drivers[0].Key("relation").Str() != "policyholder" {
				t.Errorf("first driver %v", drivers[0])
			}
		})
	}
}

func TestExtrasBranch(t *testing.T) {
	t.Run("comprehensive offers extras", func(t *testing.T) {
		s := start(t, memEngine(), 0).until("", answers(0, 1))
		if !slices.Contains(s.steps, demo.StepAddons) {
			t.Fatalf("no extras page in %q", s.steps)
		}
		// Customer 0: nationwide recovery £65, courtesy car £25, legal £20.
		if got := s.value("total.addons").String(); got != "110.00" {
			t.Errorf("extras cost %s, want 110.00", got)
		}
		premium, _ := s.value("price.premium").Decimal()
		if annual, _ := s.value("total.annual").Decimal(); annual != premium+110_00 {
			t.Errorf("annual %v, premium %v", s.value("total.annual"), s.value("price.premium"))
		}
		if !s.value("payment.amount").Equal(s.value("total.annual")) {
			t.Errorf("payment asked for %v, total %v", s.value("payment.amount"), s.value("total.annual"))
		}
	})
	t.Run("third party skips them", func(t *testing.T) {
		s := start(t, memEngine(), 0).until("", func(step string, visit int) url.Values {
			v := answers(0, 1)(step, visit)
			if step == demo.StepCover {
				v.Set("level", "tpo")
			}
			return v
		})
		if slices.Contains(s.steps, demo.StepAddons) {
			t.Fatalf("extras page shown with third party cover: %q", s.steps)
		}
		if n := s.value("extras").Len(); n != 0 {
			t.Errorf("extras holds %v", s.value("extras"))
		}
		if s.value("total.addons").String() != "0.00" || !s.value("total.annual").Equal(s.value("price.premium")) {
			t.Errorf("total %v with no extras", s.value("total"))
		}
	})
}

// quotePrice returns the premium customer 0 is quoted with one driver,
// after change alters the answers.
func quotePrice(t *testing.T, n int, change func(step string, v url.Values)) string {
	s := start(t, memEngine(), n).until(demo.StepMethod, func(step string, visit int) url.Values {
		v := answers(0, 1)(step, visit)
		if change != nil {
			change(step, v)
		}
		return v
	})
	return s.value("price.premium").String()
}

func TestPrice(t *testing.T) {
	// Customer 0: a BMW 320d worth £24,900 in group 30: base £150 + value ×
	// group / 2000 = £523.50. Ada is 40, licensed 15 years, no claims (no
	// loading); commuting +10%, 4,000 miles −10%, a driveway 0. £250
	// voluntary excess −5%: £497.33; 9 years' bonus −60%: £198.93; tax 12%
	// £23.87.
	if got := quotePrice(t, 1, nil); got != "222.80" {
		t.Errorf("premium %s, want 222.80", got)
	}
	// The same answers in another session, on another run: the same price.
	if got := quotePrice(t, 2, nil); got != "222.80" {
		t.Errorf("second quote %s, want 222.80", got)
	}

	more := func(name string, change func(step string, v url.Values)) {
		t.Run(name, func(t *testing.T) {
			if got := quotePrice(t, 3, change); decimal(t, got) <= decimal(t, "222.80") {
				t.Errorf("premium %s, want more than 222.80", got)
			}
		})
	}
	less := func(name string, change func(step string, v url.Values)) {
		t.Run(name, func(t *testing.T) {
			if got := quotePrice(t, 3, change); decimal(t, got) >= decimal(t, "222.80") {
				t.Errorf("premium %s, want less than 222.80", got)
			}
		})
	}
	set := func(onStep, field, value string) func(string, url.Values) {
		return func(step string, v url.Values) {
			if step == onStep {
				v.Set(field, value)
			}
		}
	}
	more("young driver", set(demo.StepDriver, "born", "2006-01-01"))
	more("new licence", set(demo.StepDriver, "licensed", "0"))
	more("a claim", set(demo.StepDriver, "claims", "1"))
	more("dearer car", set(demo.StepVehicle, "car", "porsche-911"))
	more("business use", set(demo.StepVehicle, "use", "business"))
	more("kept on the street", set(demo.StepVehicle, "parking", "street"))
	more("no bonus", set(demo.StepCover, "bonus", "0"))
	less("cheaper car", set(demo.StepVehicle, "car", "vauxhall-corsa"))
	less("third party only", set(demo.StepCover, "level", "tpo"))
	less("higher excess", set(demo.StepCover, "excess", "1000"))
	less("garaged", set(demo.StepVehicle, "parking", "garage"))

	t.Run("minimum premium", func(t *testing.T) {
		// A cheap car, third party only, every discount: the £150 floor
		// plus tax.
		got := quotePrice(t, 4, func(step string, v url.Values) {
			set(demo.StepVehicle, "car", "vauxhall-corsa")(step, v)
			set(demo.StepCover, "level", "tpo")(step, v)
			set(demo.StepCover, "excess", "1000")(step, v)
		})
		if got != "168.00" {
			t.Errorf("premium %s, want the minimum 168.00", got)
		}
	})
}

func decimal(t *testing.T, s string) int64 {
	u, err := model.ParseDecimal(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMonthlySchedule(t *testing.T) {
	s := start(t, memEngine(), 1).until("", answers(1, 1)) // customer 1 pays monthly
	if s.value("payment.schedule.plan").Str() != "monthly" {
		t.Fatalf("plan %v", s.value("payment.schedule.plan"))
	}
	amount, _ := s.value("payment.amount").Decimal()
	payable, _ := s.value("payment.schedule.payable").Decimal()
	first, _ := s.value("payment.schedule.firstPayment").Decimal()
	inst, _ := s.value("payment.schedule.instalment").Decimal()
	if payable != (amount*10800+5000)/10000 || first+11*inst != payable || first < inst || first-inst >= 12 {
		t.Errorf("amount %d, payable %d, first %d, 11 × %d", amount, payable, first, inst)
	}
}

// TestValuesHoldEveryAnswer checks that the summary of a finished quote
// holds every answer given, where a confirmation page would look for it.
func TestValuesHoldEveryAnswer(t *testing.T) {
	s := start(t, memEngine(), 2).until("", answers(4, 3))
	values := s.run.Values()
	driver := 0
	checked := 0
	for k, step := range s.steps {
		// A page's answers sit at its path; a repeat's are a list.
		v := values
		for _, part := range strings.Split(step, "/") {
			v = v.Key(part)
		}
		if step == demo.StepDriver {
			v = values.Key("drivers").Index(driver)
			driver++
		}
		if v.Kind() != model.KindMap {
			t.Fatalf("page %s: answers are %v", step, v)
		}
		for field, sent := range s.forms[k] {
			got := v.Key(field)
			want := strings.TrimSpace(sent[0])
			if step == demo.StepCard && field == "number" {
				// Kept truncated: first six and last four digits.
				n := strings.ReplaceAll(want, " ", "")
				want = n[:6] + strings.Repeat("*", len(n)-10) + n[len(n)-4:]
			}
			switch got.Kind() {
			case model.KindRef:
				ref, _ := got.Ref()
				if ref.ID != want {
					t.Errorf("%s.%s = %v, want a reference to %s", step, field, ref, want)
				}
			case model.KindBool:
				if !got.Bool() {
					t.Errorf("%s.%s = %v, want ticked", step, field, got)
				}
			default:
				if got.String() != want {
					t.Errorf("%s.%s = %q (%s), want %q", step, field, got, got.Kind(), want)
				}
			}
			checked++
		}
	}
	if checked < 30 {
		t.Errorf("checked only %d answers", checked)
	}
	for _, path := range []string{"price.premium", "total.annual", "payment.schedule.firstPayment",
		"payment.card.mask.last4", "payment.authorize.authorization", "policy.number"} {
		if s.value(path).IsNull() {
			t.Errorf("no %s in the summary", path)
		}
	}
}

// TestSnapshotRoundTrip snapshots the session after every interaction, as
// a primary does, and carries on from what a backup materializes from the
// snapshot; the result is the very session a run without failovers makes.
// The card page is three applications deep.
func TestSnapshotRoundTrip(t *testing.T) {
	straight := start(t, memEngine(), 7).until("", answers(0, 2))

	s := start(t, memEngine(), 7)
	visits := map[string]int{}
	for !s.run.Finished() {
		b, err := cbor.Marshal(s.run.Session())
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := cbor.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		backup := model.NewEngine(demo.Registry(), demo.Resolver()) // another node's definitions
		taken, err := backup.Materialize(t.Context(), decoded)
		if err != nil {
			t.Fatalf("materialize at %s: %v", s.page().Step, err)
		}
		want, got := s.page(), (&session{t: t, eng: backup, run: taken}).page()
		if got.Step != want.Step || got.Seq != want.Seq || !got.Values.Equal(want.Values) || len(taken.Stale()) != 0 {
			t.Fatalf("backup resumes at %s/%d, primary was at %s/%d", got.Step, got.Seq, want.Step, want.Seq)
		}
		if want.Step == demo.StepCard {
			apps := taken.Session().Apps()
			if len(apps) != 3 {
				t.Errorf("at the card page the session runs %v, want three applications", apps)
			}
		}
		// The backup takes over and answers the next page.
		s.eng, s.run = backup, taken
		form := answers(0, 2)(want.Step, visits[want.Step])
		visits[want.Step]++
		if err := s.submit(form); err != nil {
			t.Fatalf("page %s on the backup: %v", want.Step, err)
		}
	}
	a, _ := cbor.Marshal(straight.run.Session())
	b, _ := cbor.Marshal(s.run.Session())
	if !bytes.Equal(a, b) {
		t.Errorf("a quote that failed over at every page differs from one that did not:\n%v\n%v",
			straight.run.Values(), s.run.Values())
	}
}

// TestAuthorizationRetriedAfterFailover replays the card page on two
// backups from the same snapshot, as happens when a primary dies after
// authorizing but before its answer was replicated: both authorize with
// the same idempotency key, so the provider sees one payment.
func TestAuthorizationRetriedAfterFailover(t *testing.T) {
	s := start(t, memEngine(), 9).until(demo.StepCard, answers(2, 1))
	snap, err := cbor.Marshal(s.run.Session())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for range 2 {
		sess, err := cbor.Decode(snap)
		if err != nil {
			t.Fatal(err)
		}
		eng := memEngine()
		run, err := eng.Materialize(t.Context(), sess)
		if err != nil {
			t.Fatal(err)
		}
		b := &session{t: t, eng: eng, run: run, now: s.now}
		if err := b.submit(demo.Answers(demo.StepCard, 2)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, b.value("payment.authorize.idempotencyKey").Str()+" "+b.value("payment.authorize.authorization").Str())
	}
	if keys[0] != keys[1] || !strings.HasPrefix(keys[0], string(s.run.ID())) {
		t.Errorf("authorizations after two failovers: %q", keys)
	}
}

func TestCardKeptAsLastFourDigits(t *testing.T) {
	s := start(t, memEngine(), 5).until("", answers(0, 1))
	number := demo.Answers(demo.StepCard, 0).Get("number")
	last4 := number[len(number)-4:]
	if got := s.value("payment.card.mask.last4").Str(); got != last4 {
		t.Errorf("last4 %q, want %q", got, last4)
	}
	if got := s.value("payment.authorize.paidWith").Str(); got != "Visa Debit •••• "+last4 {
		t.Errorf("paid with %q", got)
	}
	// What the payment steps derived holds no card number.
	for _, path := range []string{"payment.card.mask", "payment.authorize", "policy"} {
		if v := s.value(path).String(); strings.Contains(v, number) || strings.Contains(v, strings.ReplaceAll(number, " ", "")) {
			t.Errorf("%s holds the card number: %s", path, v)
		}
	}
	snap, err := cbor.Marshal(s.run.Session())
	if err != nil {
		t.Fatal(err)
	}
	bare := strings.ReplaceAll(number, " ", "")
	if bytes.Contains(snap, []byte(number)) || bytes.Contains(snap, []byte(bare)) || bytes.Contains(snap, []byte(bare[4:12])) {
		t.Fatal("the snapshot holds the card number")
	}
	if got := s.value("payment.card.details.number").Str(); got != bare[:6]+"******"+last4 {
		t.Errorf("card page keeps %q", got)
	}
}

func TestDefinitions(t *testing.T) {
	reg := demo.Registry()
	var keys []string
	for _, a := range reg.Apps() {
		keys = append(keys, a.Key())
	}
	if fmt.Sprint(keys) != "[car-insurance@1 card@1 payment@1]" {
		t.Errorf("registered %v", keys)
	}
	if demo.Quote() != demo.Quote() || demo.Payment() != demo.Payment() {
		t.Error("definitions are rebuilt at each call")
	}
	// The quote uses the four step kinds.
	kinds := map[model.StepKind]bool{}
	for _, path := range []string{"applicant", "drivers", "extras", "price", "payment", "confirm", "policy"} {
		st, ok := demo.Quote().Step(path)
		if !ok {
			t.Fatalf("no step %s", path)
		}
		kinds[st.Kind()] = true
	}
	if len(kinds) != 4 {
		t.Errorf("step kinds used: %v", kinds)
	}
	// Every page the package documents is reachable with its answers (the
	// check page asks nothing).
	for _, step := range []string{demo.StepApplicant, demo.StepVehicle, demo.StepDriver, demo.StepCover,
		demo.StepAddons, demo.StepMethod, demo.StepCard, demo.StepConfirm} {
		if len(demo.Answers(step, 0)) == 0 {
			t.Errorf("no answers for %s", step)
		}
	}
	if len(demo.Answers("no/such/page", 0)) != 0 {
		t.Error("answers for an unknown page")
	}
}

func TestPaymentOnItsOwn(t *testing.T) {
	eng := memEngine()
	run, err := eng.Start(t.Context(), model.Begin{App: demo.PaymentAppName, Session: model.NewSessionID([16]byte{42}), Now: epoch})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, eng: eng, run: run, now: epoch}
	if err := s.submit(demo.Answers(demo.StepMethod, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.submit(demo.Answers(demo.StepCard, 0)); err != nil {
		t.Fatal(err)
	}
	if !s.run.Finished() || s.value("authorize.status").Str() != "authorized" {
		t.Errorf("payment alone: finished %v, %v", s.run.Finished(), s.run.Values())
	}
}

// TestEntitiesChangedBeforeFailover changes, in the database, the car and
// the card type a session chose, then lets a backup take the session over:
// the changed car sends the user back to confirm it and the quote is priced
// again (Reselect); a changed card type is simply reloaded.
func TestEntitiesChangedBeforeFailover(t *testing.T) {
	cfg := entity.Config{DSN: filepath.Join(t.TempDir(), "entities.db"), Seed: demo.Entities()}
	primaryDB, err := entity.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer primaryDB.Close()
	backupDB, err := entity.Open(t.Context(), cfg) // the backup's own connection
	if err != nil {
		t.Fatal(err)
	}
	defer backupDB.Close()

	s := start(t, model.NewEngine(demo.Registry(), primaryDB), 11).until(demo.StepCard, answers(0, 1))
	oldPremium := s.value("price.premium").String()
	snap, err := cbor.Marshal(s.run.Session())
	if err != nil {
		t.Fatal(err)
	}
	failover := func() (*session, []model.Stale) {
		t.Helper()
		sess, err := cbor.Decode(snap)
		if err != nil {
			t.Fatal(err)
		}
		eng := model.NewEngine(demo.Registry(), backupDB)
		run, err := eng.Materialize(t.Context(), sess)
		if err != nil {
			t.Fatal(err)
		}
		return &session{t: t, eng: eng, run: run, now: s.now}, run.Stale()
	}
	update := func(id string, change func(*model.Record)) {
		t.Helper()
		typ := demo.VehicleType
		if id == "visa-debit" {
			typ = demo.ProviderType
		}
		e, err := primaryDB.Resolve(t.Context(), model.Ref{Type: typ, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		r := *e.(*model.Record)
		change(&r)
		if _, err := primaryDB.Update(t.Context(), &r); err != nil {
			t.Fatal(err)
		}
	}

	update("visa-debit", func(r *model.Record) { r.Label = "Visa Debit (contactless)" })
	b, stale := failover()
	if len(stale) != 1 || stale[0].Action != model.Reload || stale[0].Path != demo.StepMethod {
		t.Fatalf("stale %+v, want the provider reloaded", stale)
	}
	if step := b.page().Step; step != demo.StepCard {
		t.Errorf("after a reload the user is at %s, want still %s", step, demo.StepCard)
	}

	update("bmw-320d", func(r *model.Record) { r.Fields["value"] = model.DecimalVal(3100000, 2) })
	b, stale = failover()
	if len(stale) != 2 || stale[0].Action != model.Reselect || stale[0].Path != demo.StepVehicle {
		t.Fatalf("stale %+v, want the car reselected first", stale)
	}
	if step := b.page().Step; step != demo.StepVehicle {
		t.Fatalf("after the car changed the user is at %s, want %s", step, demo.StepVehicle)
	}
	b.until("", answers(0, 1))
	if got := b.value("price.premium").String(); got == oldPremium || decimal(t, got) < decimal(t, oldPremium) {
		t.Errorf("premium after the car's value rose: %s, before %s", got, oldPremium)
	}
	if ref, _ := b.value("vehicle.car").Ref(); ref.Version != 2 {
		t.Errorf("the quote refers to %v, want version 2", ref)
	}
}
