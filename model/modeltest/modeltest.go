// Package modeltest provides applications, entities and sessions for tests
// and benchmarks of the packages built on model: a car-insurance quote that
// uses all four step kinds, entity references and every value type, and a
// driver that walks it with deterministic answers.
package modeltest

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"understudy/model"
)

// Epoch is the time test sessions start at.
var Epoch = time.Date(2026, 11, 25, 9, 30, 0, 123456789, time.UTC)

// Vehicles are the entities the quote's vehicle step chooses from.
func Vehicles() []model.Entity {
	mk := func(id, label string, value int64) model.Entity {
		return &model.Record{
			Ref:    model.Ref{Type: "vehicles", ID: id, Version: 1},
			Label:  label,
			Fields: map[string]model.Value{"value": model.DecimalVal(value*100, 2)},
		}
	}
	return []model.Entity{
		mk("v1", "Volvo V60 (2021)", 31000),
		mk("v2", "Renault Clio (2019)", 12500),
		mk("v3", "Tesla Model 3 (2023)", 42000),
	}
}

// Resolver returns an in-memory resolver holding the vehicles and the
// payment providers.
func Resolver() *model.MemResolver {
	r := model.NewMemResolver(Vehicles()...)
	r.Put(&model.Record{Ref: model.Ref{Type: "providers", ID: "acme", Version: 7}, Label: "ACME Pay"})
	r.Put(&model.Record{Ref: model.Ref{Type: "providers", ID: "globex", Version: 2}, Label: "Globex"})
	return r
}

// CardApp is the innermost application: card details.
func CardApp() *model.Application {
	return model.App("card", 1,
		model.Interactive("details",
			model.Text("holder").Required(),
			model.Text("number").Required().MinLen(12).MaxLen(19),
			model.Date("expires").Required()),
		model.Simple("mask", func(ctx model.Context, st *model.State) error {
			n := st.Get("details.number").Str()
			st.Set("last4", model.StringVal(n[len(n)-4:]))
			st.Set("token", model.BytesVal([]byte(ctx.Key("card-token"))))
			return nil
		}),
	)
}

// PaymentApp takes an amount and calls CardApp.
func PaymentApp() *model.Application {
	return model.App("payment", 2,
		model.Interactive("method",
			model.Choice("plan", model.Opt("monthly", "Monthly"), model.Opt("yearly", "Yearly")).Required(),
			model.Pick("provider", "providers").Required()),
		model.Call("card", CardApp()),
		model.Simple("authorize", func(ctx model.Context, st *model.State) error {
			units, scale := st.Get("amount").Decimal()
			st.Set("charged", model.DecimalVal(units, scale))
			st.Set("key", model.StringVal(ctx.Key("authorize")))
			st.Set("at", model.TimeVal(ctx.Now()))
			return nil
		}),
	)
}

// QuoteApp is the car-insurance quote: applicant, vehicle, a driver loop,
// pricing, an optional extra, payment and confirmation.
func QuoteApp() *model.Application {
	return model.App("car-quote", 3,
		model.Interactive("applicant",
			model.Text("name").Label("Full name").Required().MaxLen(80),
			model.Email("email").Required(),
			model.Date("born").Required().MinAge(18),
			model.Text("phone").MaxLen(30),
			model.Text("street").Required(),
			model.Text("city").Required(),
			model.Text("postcode").Required().MaxLen(10)).Title("About you"),
		model.Interactive("vehicle",
			model.Pick("car", "vehicles").Required().OnStale(model.Reselect),
			model.Int("mileage").Min(0).Max(500000),
			model.Text("registration").Required().MaxLen(10),
			model.Date("bought"),
			model.Choice("use", model.Opt("private", "Private"), model.Opt("commute", "Commuting"), model.Opt("business", "Business")).Required()),
		model.Repeat("drivers",
			model.Sequence("driver",
				model.Interactive("who",
					model.Text("name").Required(),
					model.Date("born").Required().MinAge(17),
					model.Text("licence").Required().MaxLen(20),
					model.Int("years").Required().Min(0).Max(80),
					model.Int("claims").Min(0),
					model.Choice("relation", model.Opt("self", "Self"), model.Opt("partner", "Partner"), model.Opt("child", "Child"), model.Opt("other", "Other"))),
				model.Simple("risk", driverRisk),
				model.Interactive("more", model.Bool("another").Label("Add another driver"))),
			model.While("more.another")).Max(12),
		model.Simple("price", price),
		model.If("extras", model.Is("price.offerExtras"),
			model.Interactive("cover", model.Choice("level", model.Opt("basic", "Basic"), model.Opt("full", "Full")).Required()),
			model.Simple("noExtras", func(ctx model.Context, st *model.State) error {
				st.Set("level", model.StringVal("basic"))
				return nil
			})),
		model.Call("payment", PaymentApp()).With("amount", "price.premium"),
		model.Interactive("confirm", model.Bool("agree").Label("I agree to the terms").Required()),
	).Title("Car insurance quote")
}

func driverRisk(ctx model.Context, st *model.State) error {
	years := st.Get("who.years").Int()
	risk := int64(100)
	if years < 3 {
		risk = 150
	}
	st.Set("factor", model.IntVal(risk))
	st.Set("band", model.StringVal("band-"+strconv.FormatInt(risk/50, 10)))
	st.Set("loading", model.DecimalVal(risk*125, 4))
	st.Set("assessed", model.TimeVal(ctx.Now()))
	return nil
}

func price(ctx model.Context, st *model.State) error {
	car, err := st.Entity("vehicle.car")
	if err != nil {
		return err
	}
	value, _ := car.(*model.Record).Field("value").Decimal()
	drivers := st.Get("drivers").List()
	factor := int64(0)
	for _, d := range drivers {
		factor += d.Key("risk").Key("factor").Int()
	}
	premium := value / 100 * factor / 100 // 1% of the value per driver, weighted
	st.Set("premium", model.DecimalVal(premium, 2))
	st.Set("drivers", model.IntVal(int64(len(drivers))))
	st.Set("offerExtras", model.BoolVal(premium > 50000))
	st.Set("quotedAt", model.TimeVal(ctx.Now()))
	st.Set("breakdown", model.MapVal(map[string]model.Value{
		"base":    model.DecimalVal(value/100, 2),
		"factors": model.ListVal(model.IntVal(factor), model.IntVal(int64(len(drivers)))),
	}))
	return nil
}

// Registry returns a registry with QuoteApp (and what it calls).
func Registry() *model.Registry {
	return model.NewRegistry().MustRegister(QuoteApp())
}

// Engine returns an engine over Registry and Resolver.
func Engine() *model.Engine { return model.NewEngine(Registry(), Resolver()) }

// SessionID returns a deterministic session id for n.
func SessionID(n int) model.SessionID {
	var b [16]byte
	for i := range b {
		b[i] = byte(n >> (8 * (i % 8)))
	}
	b[15] = 0x5a
	return model.NewSessionID(b)
}

// Answers returns the form values a user gives on the page at step path,
// for a quote with the given number of drivers; interaction i varies them.
func Answers(step string, drivers, i int) url.Values {
	v := url.Values{}
	switch step {
	case "applicant":
		v.Set("name", "Ada Lovelace "+strconv.Itoa(i))
		v.Set("email", "ada@example.com")
		v.Set("born", "1985-12-10")
		v.Set("phone", "+44 20 7946 0958")
		v.Set("street", "12 Marylebone Road")
		v.Set("city", "London")
		v.Set("postcode", "NW1 5LR")
	case "vehicle":
		v.Set("car", "v"+strconv.Itoa(1+i%3))
		v.Set("mileage", strconv.Itoa(12000+i))
		v.Set("registration", "LV21 XKE")
		v.Set("bought", "2021-03-15")
		v.Set("use", "commute")
	case "drivers/driver/who":
		v.Set("name", "Driver "+strconv.Itoa(i))
		v.Set("years", strconv.Itoa(i%10))
		v.Set("born", strconv.Itoa(1960+i)+"-04-0"+strconv.Itoa(1+i%9))
		v.Set("licence", "LOVEL"+strconv.Itoa(850000+i)+"AB9")
		v.Set("claims", strconv.Itoa(i%2))
		v.Set("relation", []string{"self", "partner", "child", "other"}[i%4])
	case "drivers/driver/more":
		if i < drivers {
			v.Set("another", "on")
		}
	case "extras/cover":
		v.Set("level", "full")
	case "payment/method":
		v.Set("plan", "monthly")
		v.Set("provider", "acme")
	case "payment/card/details":
		v.Set("holder", "A. Lovelace")
		v.Set("number", "4111111111111111")
		v.Set("expires", "2029-08-01")
	case "confirm":
		v.Set("agree", "on")
	}
	return v
}

// Drive starts a quote and answers pages until the session waits on stopAt
// (a step path; "" runs to the end). It returns the run and the number of
// interactions made.
func Drive(ctx context.Context, eng *model.Engine, id model.SessionID, drivers int, stopAt string) (*model.Run, int, error) {
	now := Epoch
	run, err := eng.Start(ctx, model.Begin{App: "car-quote", Session: id, Now: now, Node: "n1", Epoch: 1})
	if err != nil {
		return nil, 0, err
	}
	driver := 0
	for i := 0; i < 200; i++ {
		pg, err := eng.Page(ctx, run)
		if err != nil {
			return nil, i, err
		}
		if pg.Finished || (stopAt != "" && pg.Step == stopAt) {
			return run, i, nil
		}
		if pg.Step == "drivers/driver/more" {
			driver++
		}
		now = now.Add(time.Duration(i+1) * 1500 * time.Millisecond)
		run, err = eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: Answers(pg.Step, drivers, driver), Now: now, Node: "n1", Epoch: 1})
		if err != nil {
			return nil, i, fmt.Errorf("step %s: %w", pg.Step, err)
		}
	}
	return nil, 200, fmt.Errorf("no end after 200 interactions")
}
