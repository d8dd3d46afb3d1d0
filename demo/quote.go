package demo

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"understudy/model"
)

// The applications' names and versions.
const (
	AppName        = "car-insurance"
	AppVersion     = 1
	PaymentAppName = "payment"
	CardAppName    = "card"
)

// The pages of a quote, as model.Page.Step names them (a called
// application's pages are under the calling step's name).
const (
	StepApplicant = "applicant"
	StepVehicle   = "vehicle"
	StepDriver    = "drivers/driver" // once per driver
	StepCover     = "cover"
	StepAddons    = "extras/addons" // only with comprehensive cover
	StepCheck     = "check"         // check your answers
	StepMethod    = "payment/method"
	StepCard      = "payment/card/details"
	StepConfirm   = "confirm"
)

// MaxDrivers is the most drivers a quote may name.
const MaxDrivers = 5

var (
	phoneRE    = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{5,18}[0-9]$`)
	postcodeRE = regexp.MustCompile(`(?i)^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$`)
	regRE      = regexp.MustCompile(`(?i)^[A-Z0-9][A-Z0-9 ]{0,6}[A-Z0-9]$`)
	longAgo    = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
)

// The definitions are built once: a registry refuses two different
// definitions under one name and version, and the quote calls the very
// payment application that Payment returns.
var (
	cardApp    = sync.OnceValue(card)
	paymentApp = sync.OnceValue(func() *model.Application { return payment(cardApp()) })
	quoteApp   = sync.OnceValue(func() *model.Application { return quote(paymentApp()) })
)

// Registry returns a new registry holding the quote, the payment
// application and the card application it calls. The payment application
// can also be started on its own.
func Registry() *model.Registry {
	return model.NewRegistry().MustRegister(Quote(), Payment(), Card())
}

// Quote returns the car insurance quote: who the policyholder is, the car,
// its drivers, the cover, a price, optional extras, payment through the
// payment application, and a confirmation that issues the policy. It is the
// same definition at every call; do not modify it.
func Quote() *model.Application { return quoteApp() }

func quote(payment *model.Application) *model.Application {
	return model.App(AppName, AppVersion,
		model.Interactive("applicant",
			model.Text("name").Label("Full name").Help("As it appears on your driving licence.").
				Required().MinLen(2).MaxLen(80).Autocomplete("name"),
			model.Email("email").Label("Email address").Help("We send your quote and your policy documents here.").
				Required(),
			model.Date("born").Label("Date of birth").Help("You must be 18 or over to take out a policy. For example, 27 3 1990.").
				Required().After(longAgo).MinAge(18).Autocomplete("bday"),
			model.Text("phone").Label("Phone number").Help("Optional: only used if we need to check something with you.").
				MaxLen(20).Pattern(phoneRE, "Enter a phone number in digits, like 020 7946 0958.").InputType("tel"),
			model.Text("street").Label("Address").Help("House number or name, and street.").
				Required().MaxLen(100).Autocomplete("address-line1"),
			model.Text("city").Label("Town or city").Required().MaxLen(60).Autocomplete("address-level2"),
			model.Text("postcode").Label("Postcode").Required().MaxLen(8).
				Pattern(postcodeRE, "Enter a UK postcode, like SW1A 1AA.").Autocomplete("postal-code"),
		).Title("About you").
			Intro("Let's start with the person taking out the policy. We use these details to price your cover and to send you your documents."),

		model.Interactive("vehicle",
			// The price depends on the car's value and insurance group: if
			// they change before a failover, the user confirms the car again
			// and the quote is priced afresh, rather than sold at a price
			// made from data that no longer holds.
			model.Pick("car", VehicleType).Label("Your car").Help("Choose the make and model. Not listed? Call us and we will quote by phone.").
				Required().OnStale(model.Reselect),
			model.Text("registration").Label("Registration number").Help("As on the number plate, like LV21 XKE.").
				Required().MaxLen(8).Pattern(regRE, "Enter the registration as on the number plate, letters and digits."),
			model.Int("mileage").Label("Miles driven a year").Help("An honest estimate is fine.").
				Required().Min(500).Max(100000),
			model.Choice("use",
				model.Opt("social", "Social, domestic and pleasure"),
				model.Opt("commute", "Social and commuting"),
				model.Opt("business", "Social, commuting and business")).
				Label("What the car is used for").Required(),
			model.Choice("parking",
				model.Opt("garage", "In a locked garage"),
				model.Opt("driveway", "On a driveway"),
				model.Opt("street", "On the street")).
				Label("Where it is kept overnight").Required(),
		).Title("Your car").
			Intro("Tell us which car you want to insure. Its value and insurance group are the biggest part of the price."),

		model.Repeat("drivers",
			model.Interactive("driver",
				model.Text("name").Label("Driver's full name").Required().MinLen(2).MaxLen(80),
				// A driver's birthday: the first driver is usually the
				// policyholder, whose own the browser offers.
				model.Date("born").Label("Date of birth").Help("Drivers must be 17 or over. For example, 27 3 1990.").
					Required().After(longAgo).MinAge(17).Autocomplete("bday"),
				model.Int("licensed").Label("Years with a full driving licence").Help("Enter 0 if less than a year.").
					Required().Min(0).Max(80),
				model.Int("claims").Label("Claims or accidents in the last 5 years").Help("Count every one, whoever was at fault.").
					Required().Min(0).Max(10),
				model.Choice("relation",
					model.Opt("policyholder", "The policyholder"),
					model.Opt("partner", "Spouse or partner"),
					model.Opt("family", "Another family member"),
					model.Opt("other", "Someone else")).
					Label("Relationship to the policyholder").Required(),
				model.Bool("another").Label("Add another driver").
					Help("Tick to tell us about someone else who will drive the car (up to "+strconv.Itoa(MaxDrivers)+" drivers).").
					FlowControl(),
			).Title("Drivers").
				Intro("Tell us about everyone who will drive the car, starting with the main driver, usually you."),
			model.While("another")).Max(MaxDrivers),

		model.Interactive("cover",
			model.Choice("level",
				model.Opt("comprehensive", "Comprehensive"),
				model.Opt("tpft", "Third party, fire and theft"),
				model.Opt("tpo", "Third party only")).
				Label("Level of cover").Help("Comprehensive also covers damage to your own car, whoever is at fault.").Required(),
			model.Choice("excess",
				model.Opt("0", "£0"), model.Opt("250", "£250"), model.Opt("500", "£500"), model.Opt("1000", "£1,000")).
				Label("Voluntary excess").Help("What you agree to pay towards a claim, on top of the compulsory £250. A higher excess lowers your premium.").Required(),
			model.Int("bonus").Label("Years of no-claims bonus").Help("Years you have been insured on your own car without making a claim.").
				Required().Min(0).Max(30),
		).Title("Your cover").
			Intro("Choose how much cover you want. You can see the price on the next page and change your mind before you pay."),

		model.Simple("price", price),

		model.If("extras", model.Is("price.offerExtras"),
			model.Interactive("addons",
				model.Choice("breakdown",
					model.Opt("none", "No breakdown cover"),
					model.Opt("roadside", "Roadside assistance, £35"),
					model.Opt("national", "Nationwide recovery, £65"),
					model.Opt("european", "UK and Europe, £110")).
					Label("Breakdown cover").Required(),
				model.Bool("courtesy").Label("Courtesy car while yours is repaired, £25"),
				model.Bool("legal").Label("Motor legal protection, £20").
					Help("Up to £100,000 of legal costs to recover what an accident you did not cause cost you."),
				model.Bool("protectBonus").Label("Protect my no-claims bonus, £30"),
			).Title("Optional extras").
				Intro("Your comprehensive cover can be extended. Prices are for the year and include insurance premium tax.").
				Shows(model.Show("Your price for the year, without extras", "price.premium").Money("£"))),

		model.Simple("total", total),

		model.Review("check").
			Intro("Check what you told us before you pay. Your price depends on every answer: change one and it is worked out again.").
			Shows(model.Show("Your price for the year", "total.annual").Money("£"),
				model.Show("Of which optional extras", "total.addons").Money("£"),
				model.Show("Quote reference", "price.reference")),

		model.Call("payment", payment).
			With("amount", "total.annual").
			With("reference", "price.reference"),

		model.Interactive("confirm",
			model.Bool("agree").Label("The details I have given are correct, and I agree to the policy terms").
				Help("Giving wrong details can invalidate your policy.").Required(),
			model.Bool("marketing").Label("Email me about offers and my renewal"),
		).Title("Check and confirm").
			Intro("Your card has been authorized for the first payment but not yet charged. When you confirm, your cover starts and the payment is taken.").
			Shows(model.Show("Price for the year", "payment.schedule.payable").Money("£"),
				model.Show("Taken when you confirm", "payment.schedule.firstPayment").Money("£"),
				model.Show("Paid with", "payment.authorize.paidWith")),

		model.Simple("policy", issuePolicy),
	).Title("Car insurance quote").
		Ending("Your car is insured",
			model.Show("Policy number", "policy.number"),
			model.Show("Cover starts", "policy.starts"),
			model.Show("Cover ends", "policy.ends"),
			model.Show("Paid today", "policy.charged").Money("£")).
		WhatNext("We have emailed your policy documents and your certificate of motor insurance. Keep the certificate: it is your proof of cover.",
			"If you chose to pay monthly, the remaining 11 instalments are taken from the same card on the same day each month.",
			"Your policy renews in a year. We will write to you a month before, and you can change or cancel it at any time.")
}

// issuePolicy ends the quote: the cover starts today and the authorized
// payment is captured, with a key of its own.
func issuePolicy(ctx model.Context, st *model.State) error {
	now := ctx.Now()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	st.Set("number", model.StringVal("UQ-"+strings.ToUpper(digest(ctx.Key("policy"))[:10])))
	st.Set("starts", model.TimeVal(start))
	st.Set("ends", model.TimeVal(start.AddDate(1, 0, -1)))
	st.Set("charged", st.Get("payment.authorize.amount"))
	st.Set("captureKey", model.StringVal(ctx.Key("capture")))
	st.Set("status", model.StringVal("active"))
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
