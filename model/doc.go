// Package model is understudy's session object model: applications and their
// four kinds of step, the typed values of a step's state, the session and its
// global pool, the registry of definitions, and the engine that advances a
// session one interaction at a time.
//
// # Guarantees
//
// The package is pure and deterministic. It does no I/O of its own (entities
// come through the Resolver interface), starts no goroutines and reads no
// clock: time, session ids and the node's identity are passed in. The same
// session and the same input give the same next session, on any node, so a
// backup that materializes a snapshot resumes exactly where the primary was,
// and a run can be replayed.
//
// A Session is plain data with no pointers between steps: steps live in four
// tables by kind (the pool) and refer to each other by StepID. Materialize
// binds that data to registered definitions, checks it, and returns a Run;
// nothing it is given, however malformed, makes it panic, and every error
// names the session and the step.
//
// Engine.Submit never modifies the Run it is given: it returns a new one. A
// serving node keeps the old Run until the new one is safely replicated, so a
// failed publish leaves the session as the stream holds it. Engine.Back and
// Engine.Change, a step back and a change from a Review page, are
// interactions in the same way: checked against the sequence, they advance
// it and return a new Run. What they discard is kept in the session itself
// (its snapshot carries it), so a backup fills in and answers again exactly
// what the primary would have.
//
// A Page describes its fields as a browser needs them (PageField: control,
// autocomplete token, lengths, pattern, bounds, a date's day, month and year
// inputs) so that the markup can help and check what the engine enforces;
// the engine enforces it whatever a client sends.
//
// # Writing an application
//
// An application reads top to bottom like the flow a person walks through:
//
//	quote := model.App("car-quote", 3,
//		model.Interactive("applicant",
//			model.Text("name").Required(),
//			model.Date("born").Required().MinAge(18)),
//		model.Interactive("vehicle", model.Pick("car", "vehicles").Required()),
//		model.Repeat("drivers",
//			model.Interactive("driver", model.Text("name").Required(), model.Bool("another")),
//			model.While("another")),
//		model.Simple("price", priceQuote),
//		model.Call("payment", paymentApp),
//		model.Interactive("confirm", model.Bool("agree").Required()),
//	)
//	reg := model.NewRegistry()
//	err := reg.Register(quote)
//
// A simple step is a func(ctx model.Context, st *model.State) error; State
// explains how it finds the values collected so far.
//
// # Versions and migrations
//
// A new version of an application is registered beside the old one, and a
// session keeps the version it started with until a migration moves it.
// Registry.Migrate registers a MigrateFunc from one version's state to
// another's: pure and deterministic like a simple step, it reshapes one
// running instance of the application through an Instance (its step states
// by path; Rename, Remove and Insert for the tree). Chains are followed
// (1 to 2 to 3), and a migration back is allowed. Registry.Target picks the
// version a session moves to among those its caller accepts (a serving node
// accepts what every member of its group can materialize), and
// Engine.Migrate moves every instance of a session and materializes the
// result against the new definitions: a migration whose result does not
// fit is an error (ErrMigration) naming the session, and the run it was
// given is left as it was.
package model
