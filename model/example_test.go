package model_test

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"understudy/cbor"
	"understudy/model"
)

// Example defines an application with all four step kinds, runs it to its
// second page, snapshots it, and materializes the snapshot as a backup
// would, which then finishes the run.
func Example() {
	// A called application: an application step runs it like a subroutine.
	greeting := model.App("greeting", 1,
		model.Interactive("style", model.Choice("tone", model.Opt("warm", "Warm"), model.Opt("dry", "Dry")).Required()),
	)
	signup := model.App("signup", 1,
		model.Interactive("about", // interactive: a page with typed, validated fields
			model.Text("name").Label("Your name").Required(),
			model.Int("age").Min(0).Max(150)),
		model.Repeat("pets", // composite: repeats its body while "more" is ticked
			model.Interactive("pet", model.Text("name").Required(), model.Bool("more")),
			model.While("more")),
		model.Call("greeting", greeting), // application: calls another application
		model.Simple("welcome", func(ctx model.Context, st *model.State) error { // simple: code, no input
			msg := fmt.Sprintf("Welcome, %s, and your %d pets.", st.Get("about.name").Str(), st.Get("pets").Len())
			if st.Get("greeting.style.tone").Str() == "dry" {
				msg = "Hello."
			}
			st.Set("message", model.StringVal(msg))
			return nil
		}),
	)
	reg := model.NewRegistry()
	if err := reg.Register(signup); err != nil {
		panic(err)
	}
	eng := model.NewEngine(reg, nil)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	id := model.NewSessionID([16]byte{1, 2, 3})

	run, _ := eng.Start(ctx, model.Begin{App: "signup", Session: id, Now: now, Node: "primary", Epoch: 1})
	answer := func(run *model.Run, form url.Values) *model.Run {
		next, err := eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: form, Now: now, Node: "primary", Epoch: 1})
		if err != nil {
			panic(err)
		}
		return next
	}
	run = answer(run, url.Values{"name": {"Ada"}, "age": {"36"}})
	run = answer(run, url.Values{"name": {"Rex"}, "more": {"on"}})

	// The primary publishes this snapshot; a backup holds it.
	snapshot, _ := cbor.Marshal(run.Session())

	// The primary dies. The backup decodes and materializes the session...
	s, _ := cbor.Decode(snapshot)
	taken, _ := eng.Materialize(ctx, s)
	page, _ := eng.Page(ctx, taken)
	fmt.Printf("resumes at %s, interaction %d\n", page.Step, page.Seq)

	// ...and carries on where the user was.
	taken = answer(taken, url.Values{"name": {"Tom"}})
	taken = answer(taken, url.Values{"tone": {"warm"}})
	fmt.Println(taken.Finished(), taken.Values().Key("welcome").Key("message"))
	// Output:
	// resumes at pets/pet, interaction 2
	// true Welcome, Ada, and your 2 pets.
}

// ExampleEngine_Change shows a check-your-answers page (Review) with a
// value computed before it (Show), a change from it that returns to it, and
// a step back.
func ExampleEngine_Change() {
	order := model.App("order", 1,
		model.Interactive("size", model.Choice("size", model.Opt("s", "Small"), model.Opt("l", "Large")).Label("Size").Required()).Title("Size"),
		model.Interactive("gift", model.Bool("wrap").Label("Gift wrap")).Title("Gift"),
		model.Simple("price", func(ctx model.Context, st *model.State) error {
			p := int64(1000)
			if st.Get("size.size").Str() == "l" {
				p = 1500
			}
			st.Set("total", model.DecimalVal(p, 2))
			return nil
		}),
		model.Review("check").Shows(model.Show("Total", "price.total").Money("£")),
	)
	eng := model.NewEngine(model.NewRegistry().MustRegister(order), nil)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	in := func(run *model.Run, form url.Values) model.Input {
		return model.Input{Seq: run.Seq(), Values: form, Now: now, Node: "primary", Epoch: 1}
	}
	show := func(run *model.Run) *model.Page {
		pg, _ := eng.Page(ctx, run)
		fmt.Printf("seq %d: %s", pg.Seq, pg.StepTitle)
		for _, d := range pg.Display {
			fmt.Printf(", %s %s", d.Label, d.Value)
		}
		fmt.Println()
		return pg
	}
	run, _ := eng.Start(ctx, model.Begin{App: "order", Session: model.NewSessionID([16]byte{5}), Now: now})
	run, _ = eng.Submit(ctx, run, in(run, url.Values{"size": {"s"}}))
	run, _ = eng.Submit(ctx, run, in(run, url.Values{"wrap": {"on"}}))
	pg := show(run)

	// Change the size: the user answers that page again and is back here.
	run, _ = eng.Change(ctx, run, in(run, nil), pg.Review[0].Change)
	show(run)
	run, _ = eng.Submit(ctx, run, in(run, url.Values{"size": {"l"}}))
	show(run)

	// A step back is an interaction too: the gift page, still ticked.
	run, _ = eng.Back(ctx, run, in(run, nil))
	pg = show(run)
	fmt.Println("gift wrap:", pg.Fields[0].Value)
	// Output:
	// seq 2: Check your answers, Total £10.00
	// seq 3: Size
	// seq 4: Check your answers, Total £15.00
	// seq 5: Gift
	// gift wrap: on
}
