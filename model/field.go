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
	Value string
	Label string
}

// Opt returns an option.
func Opt(value, label string) Option { return Option{Value: value, Label: label} }

// Check is a custom validation rule: it returns a message for the user, or ""
// when v is acceptable.
type Check func(v Value) string

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
	keep              func(Value) Value
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
		return f.check(BoolVal(b))
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
		return f.check(StringVal(raw))
	case EmailField:
		a, err := mail.ParseAddress(raw)
		if err != nil || a.Name != "" || a.Address != raw || len(raw) > 254 {
			return Null, "Enter an e-mail address like name@example.com."
		}
		return f.check(StringVal(raw))
	case IntField:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return Null, "Enter a whole number."
		}
		if msg := f.bounds(n, 0); msg != "" {
			return Null, msg
		}
		return f.check(IntVal(n))
	case DecimalField:
		u, err := ParseDecimal(raw, f.scale)
		if err != nil {
			return Null, fmt.Sprintf("Enter a number with at most %d digits after the point.", f.scale)
		}
		if msg := f.bounds(u, f.scale); msg != "" {
			return Null, msg
		}
		return f.check(DecimalVal(u, f.scale))
	case DateField:
		t, err := time.Parse(time.DateOnly, raw)
		if err != nil {
			return Null, "Enter a date as YYYY-MM-DD."
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
		return f.check(TimeVal(t))
	case ChoiceField:
		for _, o := range f.options {
			if o.Value == raw {
				return f.check(StringVal(raw))
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

func (f *Field) check(v Value) (Value, string) {
	for _, c := range f.checks {
		if msg := c(v); msg != "" {
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
