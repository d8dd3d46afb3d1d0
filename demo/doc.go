// Package demo is understudy's demo application: a car insurance quote that
// a person would recognise, written only with the public API of package
// model, as a team would write its own.
//
// # The quote
//
// Registry registers three applications: the quote (AppName), the payment
// application it calls (PaymentAppName), and the card application that one
// calls in turn (CardAppName). The pages, as model.Page.Step names them:
//
//	applicant             About you: name, email, date of birth (18 or over),
//	                      phone (optional), address, postcode
//	vehicle               Your car: the car, chosen from the database
//	                      (a canonical reference; reselected if it changed),
//	                      registration, annual mileage, use, overnight parking
//	drivers/driver        Drivers, once per driver (at most MaxDrivers): name,
//	                      date of birth (17 or over), years licensed, claims,
//	                      relationship, and "Add another driver"
//	cover                 Your cover: level, voluntary excess, no-claims years
//	extras/addons         Optional extras: breakdown cover, courtesy car, legal
//	                      protection, protected bonus; only with comprehensive
//	                      cover; shows the price without them
//	check                 Check your answers (model.Review): every page so far,
//	                      each with a Change link, and the price
//	payment/method        Payment: annual or monthly, card type (a reference);
//	                      shows the price
//	payment/card/details  Card details: name on card, number, expiry (a card
//	                      that has expired by the time of the interaction is
//	                      refused)
//	confirm               Check and confirm: "I agree" must be ticked; shows
//	                      the price, the first payment and the card
//
// Every page after the first has a Back link, and the check page a Change
// link per section, which returns to it once the page is answered again
// (model.Engine.Back and Change). The finished quote shows the policy
// number, its dates and what was paid, and what happens next
// (model.Application.Ending, WhatNext). Fields carry autocomplete tokens
// (name, email, bday, tel, address-line1, address-level2, postal-code,
// cc-name, cc-number, cc-exp), so a browser fills them and a client that
// reads only the markup can too.
//
// Between the pages, simple steps price the quote ("price": from the car's
// value and insurance group, the drivers' ages, experience and claims, its
// use, the cover level, excess and no-claims bonus, plus insurance premium
// tax), add the extras ("total"), work out the payment schedule
// ("payment/schedule"), keep the card's last four digits ("payment/card/mask"),
// authorize the first payment ("payment/authorize", with an idempotency key
// from model.Context.Key) and issue the policy ("policy"). Money is decimal
// pounds (model.DecimalVal, scale 2), computed in integer pence.
//
// The four kinds of step all appear: interactive pages, simple steps, the
// composites Repeat (the drivers) and If (the extras), and application
// steps (payment, card). Entity references (vehicles, providers) sit beside
// raw values of every type a page can produce.
//
// # Entities
//
// Vehicles and Providers are the entities the quote refers to; Entities is
// both, the seed of a database serving the demo (entity.Config.Seed), and
// Resolver holds them in memory.
//
// # Driving it
//
// Answers gives valid answers to every page, for tests and load generators
// that drive the demo through the engine or through HTTP: submit
// Answers(page.Step, i) to whatever page is shown until the quote finishes.
// That names one driver; DriverAnswers gives further ones.
//
// # Guarantees
//
// Every simple step is a deterministic function of the state and of what
// model.Context passes in (the time, idempotency keys): no clock, no
// randomness, no I/O but the resolver's. A session replayed, or
// materialized on a backup, computes the same price, schedule, references
// and policy number.
//
// The card application never asks for the security code, and never keeps a
// whole card number: the card page's answer is truncated to its first six
// and last four digits (model.Field.Keep) before it enters the state, so no
// snapshot holds the number the user typed.
//
// # Releases
//
// The demo has two releases, for rolling upgrades (Release): v1
// (Registry) and v2 (RegistryV2), which adds version 2 of the quote
// (QuoteV2: the policyholder's name in two fields) and the migrations
// between the two versions (NameApart, NameTogether).
package demo
