package model

import (
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FieldType is the type of an interactive step's field: what the page asks
// for and what value the state gets.
type FieldType uint8

// The field types.
const (
	TextField FieldType = iota + 1
	EmailField
	IntField
	DecimalField
	BoolField
	DateField
	ChoiceField
	EntityField
)

var fieldTypeNames = [...]string{"", "text", "email", "int", "decimal", "bool", "date", "choice", "entity"}

func (t FieldType) String() string {
	if int(t) < len(fieldTypeNames) {
		return fieldTypeNames[t]
	}
	return "field(" + strconv.Itoa(int(t)) + ")"
}

// DefaultMaxLen bounds a text field that sets no MaxLen of its own; no field
// accepts more than MaxInputLen bytes whatever it says.
const (
	DefaultMaxLen = 200
	MaxInputLen   = 4096
)

// StaleRule says what to do when an entity a field chose has changed (its
// version differs) by the time a backup materializes the session.
type StaleRule uint8

const (
	// Reload accepts the entity's current version and carries on.
	Reload StaleRule = iota
	// Reselect sends the user back to the step that chose the entity, so
	// they confirm or change their choice; what followed is discarded.
	Reselect
)

// Option is one choice of a choice field.
type Option struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

// Opt returns an option.
func Opt(value, label string) Option { return Option{Value: value, Label: label} }

// Check is a custom validation rule: it returns a message for the user, or ""
// when v is acceptable.
type Check func(v Value) string

// CheckAt is a custom validation rule that depends on the time of the
// interaction (a card that has expired): now is the time passed in with the
// input, so replays decide the same way.
type CheckAt func(v Value, now time.Time) string

// Field describes one input of an interactive step. Build fields with Text,
// Email, Int, Decimal, Bool, Date, Choice and Pick and refine them with the
// chained methods:
//
//	model.Text("name").Label("Full name").Required().MaxLen(80)
type Field struct {
	name, label, help string
	typ               FieldType
	required          bool
	minLen, maxLen    int
	min, max          *int64 // whole units
	scale             uint8
	pattern           *regexp.Regexp
	patternMsg        string
	before, after     time.Time
	minAge            int
	options           []Option
	entity            string
	stale             StaleRule
	checks            []Check
	checksAt          []CheckAt
	keep              func(Value) Value

	// What the markup says (see PageField): the control and the help a
	// browser gives. The server never relies on them.
	input, inputMode, autocomplete, htmlPattern string
	flow                                        bool
}

func newField(name string, t FieldType) *Field { return &Field{name: name, typ: t} }

// Text is a free-text field.
func Text(name string) *Field { return newField(name, TextField) }

// Email is an e-mail address field.
func Email(name string) *Field { return newField(name, EmailField) }

// Int is a whole-number field.
func Int(name string) *Field { return newField(name, IntField) }

// Decimal is a decimal field with scale digits after the point (money: 2).
func Decimal(name string, scale uint8) *Field {
	f := newField(name, DecimalField)
	f.scale = min(scale, MaxDecimalScale)
	return f
}

// Bool is a yes/no field (a checkbox). Required means it must be ticked.
func Bool(name string) *Field { return newField(name, BoolField) }

// Date is a calendar date; its value is midnight UTC of that day.
func Date(name string) *Field { return newField(name, DateField) }

// Choice is a field whose value is one of fixed options.
func Choice(name string, options ...Option) *Field {
	f := newField(name, ChoiceField)
	f.options = options
	return f
}

// Pick is a field whose value is an entity of the given type, chosen from the
// resolver's Choices. The state stores it canonically, as a Ref.
func Pick(name, entityType string) *Field {
	f := newField(name, EntityField)
	f.entity = entityType
	return f
}

// Label sets the text a page shows for the field (default: its name).
func (f *Field) Label(s string) *Field { f.label = s; return f }

// Help sets a line of explanation shown with the field.
func (f *Field) Help(s string) *Field { f.help = s; return f }

// Required makes the field mandatory (a Bool must be ticked).
func (f *Field) Required() *Field { f.required = true; return f }

// MinLen sets the least number of characters of a text field.
func (f *Field) MinLen(n int) *Field { f.minLen = n; return f }

// MaxLen sets the most characters of a text field.
func (f *Field) MaxLen(n int) *Field { f.maxLen = n; return f }

// Min sets the least value of a number field, in whole units.
func (f *Field) Min(n int64) *Field { f.min = &n; return f }

// Max sets the greatest value of a number field, in whole units.
func (f *Field) Max(n int64) *Field { f.max = &n; return f }

// Pattern requires text to match re; msg is shown when it does not.
func (f *Field) Pattern(re *regexp.Regexp, msg string) *Field {
	f.pattern, f.patternMsg = re, msg
	return f
}

// Before requires a date strictly before t.
func (f *Field) Before(t time.Time) *Field { f.before = t; return f }

// After requires a date strictly after t.
func (f *Field) After(t time.Time) *Field { f.after = t; return f }

// MinAge requires a date at least years before the interaction's time (a
// date of birth of someone that old). It uses the time passed in with the
// input, so replays decide the same way.
func (f *Field) MinAge(years int) *Field { f.minAge = years; return f }

// OnStale sets what happens when the chosen entity changed before a
// failover (Pick fields; default Reload).
func (f *Field) OnStale(r StaleRule) *Field { f.stale = r; return f }

// Check adds a custom rule.
func (f *Field) Check(c Check) *Field { f.checks = append(f.checks, c); return f }

// CheckAt adds a custom rule that reads the interaction's time.
func (f *Field) CheckAt(c CheckAt) *Field { f.checksAt = append(f.checksAt, c); return f }

// Autocomplete sets the field's autocomplete token, which tells a browser
// what to fill it with ("name", "postal-code", "cc-number", "bday"; see the
// HTML standard's autofill field names). Default: "email" for an Email
// field, "tel" for a field whose input type is "tel", none otherwise. A
// date's token is given to its day, month and year inputs with "-day",
// "-month" and "-year" appended ("bday" makes "bday-day"...).
func (f *Field) Autocomplete(token string) *Field { f.autocomplete = token; return f }

// InputType sets the control a page shows for the field instead of the
// default for its kind: "tel" or "text" for a text field, "text" for a
// number that is a code rather than a quantity, "radio" or "select" for a
// choice (default: radios for up to MaxRadios options, a select above).
func (f *Field) InputType(t string) *Field { f.input = t; return f }

// InputMode sets the keyboard a phone shows ("numeric", "decimal", "tel",
// "email"). Default: none, or "numeric" for a whole number shown as text.
func (f *Field) InputMode(m string) *Field { f.inputMode = m; return f }

// HTMLPattern sets the pattern attribute the markup carries (an
// ECMAScript regular expression, matched against the whole value) when
// the one derived from Pattern's regular expression is not wanted, or
// when a Check enforces a rule a pattern can describe. "" derives it.
func (f *Field) HTMLPattern(p string) *Field { f.htmlPattern = p; return f }

// FlowControl marks a field that steers the flow rather than answers a
// question (an "add another driver" tick box): summaries and the check
// page leave it out. It is kept in the state like any other value.
func (f *Field) FlowControl() *Field { f.flow = true; return f }

// Keep stores fn(v) instead of what the user typed, once it is valid: what
// must not be kept whole (a card number) is reduced before it enters the
// state, and so never reaches a snapshot. fn must return a value of the
// field's kind (a string for a text field).
func (f *Field) Keep(fn func(Value) Value) *Field { f.keep = fn; return f }

// Name returns the field's name: its key in the step's state.
func (f *Field) Name() string { return f.name }

// Type returns the field's type.
func (f *Field) Type() FieldType { return f.typ }

// Title returns the label a page shows.
func (f *Field) Title() string {
	if f.label != "" {
		return f.label
	}
	return f.name
}

func (f *Field) limit() int {
	if f.maxLen > 0 {
		return min(f.maxLen, MaxInputLen)
	}
	return DefaultMaxLen
}

// parse turns what a user sent for the field into a value, or returns a
// message saying what is wrong. An entity field yields the chosen id as a
// string; the engine resolves it. An absent optional field yields null.
func (f *Field) parse(raw string, now time.Time) (Value, string) {
	if len(raw) > MaxInputLen || !utf8.ValidString(raw) {
		return Null, "This is not valid input."
	}
	if f.typ != TextField {
		raw = strings.TrimSpace(raw)
	}
	if f.typ == BoolField {
		b := raw == "on" || raw == "true" || raw == "1" || raw == "yes"
		if f.required && !b {
			return Null, "This must be ticked to continue."
		}
		return f.check(BoolVal(b), now)
	}
	if strings.TrimSpace(raw) == "" {
		if f.required {
			return Null, "This is required."
		}
		return Null, ""
	}
	switch f.typ {
	case TextField:
		raw = strings.TrimSpace(raw)
		n := utf8.RuneCountInString(raw)
		if n > f.limit() {
			return Null, fmt.Sprintf("At most %d characters.", f.limit())
		}
		if n < f.minLen {
			return Null, fmt.Sprintf("At least %d characters.", f.minLen)
		}
		if f.pattern != nil && !f.pattern.MatchString(raw) {
			return Null, f.patternMsg
		}
		return f.check(StringVal(raw), now)
	case EmailField:
		a, err := mail.ParseAddress(raw)
		if err != nil || a.Name != "" || a.Address != raw || len(raw) > 254 {
			return Null, "Enter an e-mail address like name@example.com."
		}
		return f.check(StringVal(raw), now)
	case IntField:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return Null, "Enter a whole number."
		}
		if msg := f.bounds(n, 0); msg != "" {
			return Null, msg
		}
		return f.check(IntVal(n), now)
	case DecimalField:
		u, err := ParseDecimal(raw, f.scale)
		if err != nil {
			return Null, fmt.Sprintf("Enter a number with at most %d digits after the point.", f.scale)
		}
		if msg := f.bounds(u, f.scale); msg != "" {
			return Null, msg
		}
		return f.check(DecimalVal(u, f.scale), now)
	case DateField:
		t, msg := parseDate(raw)
		if msg != "" {
			return Null, msg
		}
		if !f.before.IsZero() && !t.Before(f.before) {
			return Null, "Enter a date before " + f.before.Format(time.DateOnly) + "."
		}
		if !f.after.IsZero() && !t.After(f.after) {
			return Null, "Enter a date after " + f.after.Format(time.DateOnly) + "."
		}
		if f.minAge > 0 && t.AddDate(f.minAge, 0, 0).After(now) {
			return Null, fmt.Sprintf("You must be at least %d years old.", f.minAge)
		}
		return f.check(TimeVal(t), now)
	case ChoiceField:
		for _, o := range f.options {
			if o.Value == raw {
				return f.check(StringVal(raw), now)
			}
		}
		return Null, "Choose one of the options."
	case EntityField:
		if len(raw) > 128 {
			return Null, "Choose one of the options."
		}
		return StringVal(raw), ""
	}
	return Null, "This field cannot be filled in."
}

// bounds checks units×10^-scale against Min and Max (whole units).
func (f *Field) bounds(units int64, scale uint8) string {
	whole := units
	for range scale {
		whole /= 10
	}
	if f.min != nil && (whole < *f.min || whole == *f.min && units < 0 && whole*pow10(scale) != units) {
		return fmt.Sprintf("At least %d.", *f.min)
	}
	if f.max != nil && (whole > *f.max || whole == *f.max && units > 0 && whole*pow10(scale) != units) {
		return fmt.Sprintf("At most %d.", *f.max)
	}
	return ""
}

func pow10(n uint8) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

func (f *Field) check(v Value, now time.Time) (Value, string) {
	for _, c := range f.checks {
		if msg := c(v); msg != "" {
			return Null, msg
		}
	}
	for _, c := range f.checksAt {
		if msg := c(v, now); msg != "" {
			return Null, msg
		}
	}
	if f.keep != nil {
		v = f.keep(v)
	}
	return v, ""
}

// format writes a value back into the text a form field holds.
func (f *Field) format(v Value) string {
	switch v.Kind() {
	case KindNull:
		return ""
	case KindBool:
		if v.Bool() {
			return "on"
		}
		return ""
	case KindTime:
		return v.Time().Format(time.DateOnly)
	case KindRef:
		r, _ := v.Ref()
		return r.ID
	}
	return v.String()
}

// The inputs of a date, as a form sends them: a date field "born" is
// entered as born-day, born-month and born-year (see PageField.Parts).
const (
	DaySuffix   = "-day"
	MonthSuffix = "-month"
	YearSuffix  = "-year"
)

// dateRaw returns what the user sent for a date field: its single value
// (a JSON client's "1985-12-10") if there is one, else its day, month and
// year inputs as "day/month/year", or "" when all are empty.
func dateRaw(form map[string][]string, name string) (raw string, parts bool) {
	first := func(k string) string {
		if vs := form[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	if v := first(name); strings.TrimSpace(v) != "" {
		return v, false
	}
	d, m, y := first(name+DaySuffix), first(name+MonthSuffix), first(name+YearSuffix)
	if strings.TrimSpace(d+m+y) == "" {
		return "", true
	}
	return strings.TrimSpace(d) + "/" + strings.TrimSpace(m) + "/" + strings.TrimSpace(y), true
}

// parseDate reads a date as ISO 8601 ("1985-12-10") or day/month/year
// ("10/12/1985", what a page's three inputs make), and returns a message in
// the words of the GOV.UK date pattern when it is not a real date.
func parseDate(raw string) (time.Time, string) {
	if t, err := time.Parse(time.DateOnly, raw); err == nil {
		return t, ""
	}
	parts := strings.Split(raw, "/")
	if len(parts) != 3 {
		return time.Time{}, "Enter a real date, like 27 3 1990."
	}
	var missing []string
	for i, p := range parts {
		if strings.TrimSpace(p) == "" {
			missing = append(missing, [...]string{"a day", "a month", "a year"}[i])
		}
	}
	if len(missing) > 0 {
		return time.Time{}, "The date must include " + strings.Join(missing, " and ") + "."
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 || strings.ContainsAny(p, "+-") {
			return time.Time{}, "Enter the date in numbers, like 27 3 1990."
		}
		n[i] = v
	}
	if len(strings.TrimSpace(parts[2])) != 4 {
		return time.Time{}, "Enter the year with four digits, like 1990."
	}
	t := time.Date(n[2], time.Month(n[1]), n[0], 0, 0, 0, 0, time.UTC)
	if t.Day() != n[0] || int(t.Month()) != n[1] || t.Year() != n[2] {
		return time.Time{}, "Enter a real date, like 27 3 1990."
	}
	return t, ""
}
