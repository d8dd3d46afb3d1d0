package demo_test

import (
	"context"
	"fmt"
	"time"

	"understudy/demo"
	"understudy/model"
)

// Example walks a quote from the first page to the policy, answering each
// page with the demo's answers for customer 0, as a load generator does.
func Example() {
	eng := model.NewEngine(demo.Registry(), demo.Resolver())
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	id := model.NewSessionID([16]byte{1})

	run, err := eng.Start(ctx, model.Begin{App: demo.AppName, Session: id, Now: now, Node: "primary", Epoch: 1})
	for err == nil && !run.Finished() {
		var page *model.Page
		if page, err = eng.Page(ctx, run); err != nil {
			break
		}
		fmt.Printf("%-21s %s\n", page.Step, page.StepTitle)
		now = now.Add(time.Minute)
		run, err = eng.Submit(ctx, run, model.Input{
			Seq: run.Seq(), Values: demo.Answers(page.Step, 0), Now: now, Node: "primary", Epoch: 1,
		})
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	v := run.Values()
	fmt.Printf("premium £%s, extras £%s, paid with %s\n",
		v.Key("price").Key("premium"), v.Key("total").Key("addons"), v.Key("payment").Key("authorize").Key("paidWith"))
	fmt.Printf("policy from %s to %s\n", v.Key("policy").Key("starts"), v.Key("policy").Key("ends"))
	// Output:
	// applicant             About you
	// vehicle               Your car
	// drivers/driver        Drivers
	// cover                 Your cover
	// extras/addons         Optional extras
	// check                 Check your answers
	// payment/method        Payment
	// payment/card/details  Card details
	// confirm               Check and confirm
	// premium £222.80, extras £110.00, paid with Visa Debit •••• 1111
	// policy from 2026-11-25 to 2027-11-24
}
