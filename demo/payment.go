package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"understudy/model"
)

// monthlyChargeBP is the credit charge for paying monthly, in basis points
// of the annual price.
const monthlyChargeBP = 800

var expiryRE = regexp.MustCompile(`^(0[1-9]|1[0-2])/[0-9]{2}$`)

// Payment returns the payment application: how to pay, the card (through
// the card application), and an authorization of the first payment. It
// takes the parameters amount (a decimal, the annual price) and reference
// (the caller's reference for the payment). It is the same definition at
// every call; do not modify it.
func Payment() *model.Application { return paymentApp() }

func payment(card *model.Application) *model.Application {
	return model.App(PaymentAppName, 1,
		model.Interactive("method",
			model.Choice("plan",
				model.Opt("annual", "Pay the year in full"),
				model.Opt("monthly", "Pay monthly: a first payment and 11 instalments (8% credit charge)")).
				Label("How would you like to pay?").Required(),
			// A provider that changed since it was chosen is simply reloaded:
			// nothing priced so far depends on it.
			model.Pick("provider", ProviderType).Label("Card type").Required().OnStale(model.Reload),
		).Title("Payment").
			Intro("Choose how to pay. We authorize your card for the first payment now and take it only when you confirm.").
			Shows(model.Show("Price for the year", "amount").Money("£")),
		model.Simple("schedule", schedule),
		model.Call("card", card),
		model.Simple("authorize", authorize),
	).Title("Payment")
}

// Card returns the card application: the card's details, and a step that
// derives their last four digits, brand and a token. It is the same
// definition at every call; do not modify it.
func Card() *model.Application { return cardApp() }

func card() *model.Application {
	return model.App(CardAppName, 1,
		model.Interactive("details",
			model.Text("holder").Label("Name on card").Required().MaxLen(70).Autocomplete("cc-name"),
			model.Text("number").Label("Card number").Help("The long number on the front of your card.").
				Required().MaxLen(23).Check(cardNumber).Keep(truncatePAN).
				Autocomplete("cc-number").InputMode("numeric"),
			model.Text("expiry").Label("Expiry date").Help("MM/YY, as printed on the card.").
				Required().MaxLen(5).Pattern(expiryRE, "Enter the expiry date as MM/YY, like 08/29.").
				CheckAt(notExpired).Autocomplete("cc-exp"),
		).Title("Card details").
			Intro("Enter the card you want to pay with. It is authorized for the first payment now, and charged only when you confirm."),
		model.Simple("mask", mask),
	).Title("Card details")
}

// schedule works out what is paid when.
func schedule(ctx model.Context, st *model.State) error {
	amount := pence(st.Get("amount"))
	payable, first, instalment, instalments := amount, amount, int64(0), int64(0)
	if st.Get("method.plan").Str() == "monthly" {
		payable = scale(amount, 10000+monthlyChargeBP)
		instalment = payable / 12
		first = payable - 11*instalment // the first payment takes the odd pennies
		instalments = 11
	}
	st.Set("plan", st.Get("method.plan"))
	st.Set("payable", money(payable))
	st.Set("charge", money(payable-amount))
	st.Set("firstPayment", money(first))
	st.Set("instalment", money(instalment))
	st.Set("instalments", model.IntVal(instalments))
	return nil
}

// truncatePAN reduces a valid card number to what may be stored: its first
// six and last four digits, the rest starred (the truncation card networks
// allow). The full number never enters the session, so no snapshot holds it.
func truncatePAN(v model.Value) model.Value {
	n := digits(v.Str())
	if len(n) < 12 {
		return model.StringVal(strings.Repeat("*", len(n)))
	}
	return model.StringVal(n[:6] + strings.Repeat("*", len(n)-10) + n[len(n)-4:])
}

// mask keeps what may be kept of a card: its last four digits, its brand,
// and a token standing for it at the payment provider.
func mask(ctx model.Context, st *model.State) error {
	// The card page kept the first six and last four digits only.
	n := digits(st.Get("details.number").Str())
	if len(n) < 10 {
		return fmt.Errorf("truncated card number of %d digits", len(n))
	}
	last4 := n[len(n)-4:]
	st.Set("last4", model.StringVal(last4))
	st.Set("masked", model.StringVal("•••• "+last4))
	st.Set("brand", model.StringVal(brand(n)))
	st.Set("token", model.StringVal("tok_"+digest(ctx.Key("token"))[:16]))
	return nil
}

// authorize authorizes the first payment. A real provider is called with
// the idempotency key, which is the same for this step whenever and
// wherever it runs: a backup that re-runs the step after a failover gets
// the same authorization back instead of a second one.
func authorize(ctx model.Context, st *model.State) error {
	prov, err := st.Entity("method.provider")
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	key := ctx.Key("authorize")
	amount := st.Get("schedule.firstPayment")
	masked := st.Get("card.mask.masked").Str()
	st.Set("idempotencyKey", model.StringVal(key))
	st.Set("authorization", model.StringVal("AUTH-"+strings.ToUpper(digest(key)[:10])))
	st.Set("amount", amount)
	st.Set("paidWith", model.StringVal(label(prov)+" "+masked))
	st.Set("status", model.StringVal("authorized"))
	st.Set("at", model.TimeVal(ctx.Now()))
	return nil
}

// notExpired refuses a card whose expiry month (MM/YY, already checked by
// the pattern) has passed by the time of the interaction: a card is valid
// to the end of the month printed on it.
func notExpired(v model.Value, now time.Time) string {
	var month, year int
	if _, err := fmt.Sscanf(v.Str(), "%d/%d", &month, &year); err != nil {
		return "Enter the expiry date as MM/YY, like 08/29."
	}
	end := time.Date(2000+year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)
	if !now.Before(end) {
		return "This card has expired: use a card that is still valid."
	}
	return ""
}

// cardNumber checks a card number: digits (spaces and dashes allowed
// between them), 12 to 19 of them, passing the Luhn check.
func cardNumber(v model.Value) string {
	s := v.Str()
	if strings.Trim(s, "0123456789 -") != "" {
		return "Enter the card number in digits only."
	}
	n := digits(s)
	switch {
	case len(n) < 12:
		return "This card number is too short: card numbers have 12 to 19 digits."
	case len(n) > 19:
		return "This card number is too long: card numbers have 12 to 19 digits."
	case !luhn(n):
		return "This card number is not valid: check it and try again."
	}
	return ""
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// luhn reports whether a string of digits passes the Luhn check, which
// catches a mistyped digit and most swapped pairs.
func luhn(n string) bool {
	sum := 0
	for i := range len(n) {
		d := int(n[len(n)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func brand(n string) string {
	switch {
	case strings.HasPrefix(n, "4"):
		return "Visa"
	case strings.HasPrefix(n, "34"), strings.HasPrefix(n, "37"):
		return "American Express"
	case n[0] == '5' && n[1] >= '1' && n[1] <= '5', n >= "2221" && n < "2721":
		return "Mastercard"
	}
	return "Card"
}

// digest is a stable, opaque hex string derived from an idempotency key.
func digest(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func label(e model.Entity) string {
	if s, ok := e.(fmt.Stringer); ok {
		return s.String()
	}
	return e.EntityRef().ID
}
