package model

import (
	"strconv"
	"strings"
	"time"
)

// MaxRadios is the most options a choice shows as radios by default; a
// longer list is a select box.
const MaxRadios = 6

// maxEmailLen is the longest e-mail address a field accepts (RFC 5321).
const maxEmailLen = 254

// DatePart is one input of a date: day, month or year.
type DatePart struct {
	Name         string `json:"name"`  // the form key: "born-day"
	Label        string `json:"label"` // "Day"
	Value        string `json:"value"` // as the form holds it
	MaxLength    int    `json:"maxlength"`
	Autocomplete string `json:"autocomplete,omitempty"` // "bday-day" for a field with token "bday"
}

// control returns the control a page shows for the field.
func (f *Field) control(options int) string {
	if f.input != "" {
		return f.input
	}
	switch f.typ {
	case EmailField:
		return "email"
	case IntField, DecimalField:
		return "number"
	case BoolField:
		return "checkbox"
	case DateField:
		return "date"
	case ChoiceField, EntityField:
		if options <= MaxRadios {
			return "radio"
		}
		return "select"
	}
	return "text"
}

// markup fills in what the page's HTML says about the field: its control,
// the constraints the server enforces, and the browser's help.
func (f *Field) markup(pf *PageField) {
	pf.Input = f.control(len(pf.Options))
	pf.InputMode, pf.Autocomplete = f.inputMode, f.autocomplete
	if pf.Autocomplete == "" {
		switch pf.Input {
		case "email":
			pf.Autocomplete = "email"
		case "tel":
			pf.Autocomplete = "tel"
		}
	}
	switch f.typ {
	case TextField:
		pf.MaxLength, pf.MinLength = f.limit(), f.minLen
		pf.Pattern = f.htmlPattern
		if pf.Pattern == "" {
			pf.Pattern = htmlPattern(f.pattern)
		}
	case EmailField:
		pf.MaxLength = maxEmailLen
	case IntField, DecimalField:
		pf.Min, pf.Max = f.min, f.max
		if pf.Input == "number" {
			pf.Step = "1"
			if f.typ == DecimalField && f.scale > 0 {
				pf.Step = "0." + strings.Repeat("0", int(f.scale)-1) + "1"
			}
		} else if pf.InputMode == "" {
			// A number shown as text (a code): a numeric keyboard.
			pf.InputMode = "numeric"
			if f.typ == DecimalField {
				pf.InputMode = "decimal"
			}
		}
	case DateField:
		pf.Parts = f.dateParts(pf.Value)
	}
}

// dateParts returns a date's inputs in the order the page shows them: day,
// month, year, as dates are written in the United Kingdom. value is what
// the form holds: an ISO date or day/month/year.
func (f *Field) dateParts(value string) []DatePart {
	dmy := splitDate(value)
	part := func(suffix, label, v string, n int) DatePart {
		p := DatePart{Name: f.name + suffix, Label: label, Value: v, MaxLength: n}
		if f.autocomplete != "" && f.autocomplete != "off" {
			p.Autocomplete = f.autocomplete + suffix
		}
		return p
	}
	return []DatePart{part(DaySuffix, "Day", dmy[0], 2), part(MonthSuffix, "Month", dmy[1], 2), part(YearSuffix, "Year", dmy[2], 4)}
}

// splitDate splits what a form holds for a date, an ISO date or
// day/month/year, into day, month and year.
func splitDate(value string) [3]string {
	if t, err := time.Parse(time.DateOnly, value); err == nil {
		return [3]string{strconv.Itoa(t.Day()), strconv.Itoa(int(t.Month())), strconv.Itoa(t.Year())}
	}
	if ps := strings.Split(value, "/"); len(ps) == 3 {
		return [3]string{ps[0], ps[1], ps[2]}
	}
	return [3]string{}
}

// Display is a value a page shows but the user does not enter: something a
// simple step computed (a price, a policy number), read from the state by
// a path as State.Get reads it, from the page's step outwards.
type Display struct {
	label, path string
	format      func(Value) string
}

// Show returns a display of the value at path, labelled label. Values are
// shown in words (see Words) unless Format or Money says otherwise.
func Show(label, path string) *Display { return &Display{label: label, path: path} }

// Format sets how the value is written for people.
func (d *Display) Format(fn func(Value) string) *Display { d.format = fn; return d }

// Money writes a decimal as an amount of money: the symbol, thousands
// separated by commas, and its digits after the point ("£1,234.50").
func (d *Display) Money(symbol string) *Display {
	d.format = func(v Value) string { return Money(symbol, v) }
	return d
}

// Shown is a display as a page holds it.
type Shown struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Money writes a number as an amount of money: "£1,234.50". A value that
// is not a number is written in words.
func Money(symbol string, v Value) string {
	var s string
	switch v.Kind() {
	case KindDecimal:
		s = v.String()
	case KindInt:
		s = strconv.FormatInt(v.Int(), 10)
	default:
		return Words(v)
	}
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if dot {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return sign + symbol + b.String()
}

// Words writes a value for people: a date as "10 December 1985", a time of
// day with its hour and minute, a tick as Yes or No, anything else as
// Value.String writes it.
func Words(v Value) string {
	switch v.Kind() {
	case KindBool:
		if v.Bool() {
			return "Yes"
		}
		return "No"
	case KindTime:
		t := v.Time()
		if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
			return t.Format("2 January 2006")
		}
		return t.Format("2 January 2006, 15:04 MST")
	}
	return v.String()
}
