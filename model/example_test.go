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
