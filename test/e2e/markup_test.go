//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// This file is a client that fills forms from what their HTML says, and
// nothing else: the controls, their labels and legends, their types,
// autocomplete tokens and constraints (required, minlength, maxlength,
// pattern, min, max, step), and the error summary of a page that refused
// its answers. It knows how people's details are written (a postcode, a
// phone number, a card's expiry, and the Luhn check of a card number), not
// any application's rules.

// markupPage is a page as its markup describes it.
type markupPage struct {
	Title, Heading string
	Errors         []string // the error summary's entries
	Answer         *markupForm
	Back           bool // a form that steps back
}

// markupForm is the form that answers the page: the one whose hidden
// fields do not ask for a step back or a change.
type markupForm struct {
	Action   string
	Hidden   [][2]string
	Controls []*control
}

// control is one input or select, as its attributes and labels say.
type control struct {
	Tag, Type, Name, ID, Value string
	Label, Legend              string // its label's text, the legend of its fieldset
	Autocomplete, InputMode    string
	Pattern                    string
	MinLength, MaxLength       int
	Min, Max, Step             string
	Required, Checked          bool
	Options                    []string // a select's option values
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

// readMarkup parses a page.
func readMarkup(src string) (*markupPage, error) {
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return nil, err
	}
	pg := &markupPage{}
	labels := map[string]string{}
	var forms []*markupForm
	var walk func(n *html.Node, form *markupForm, legend string)
	walk = func(n *html.Node, form *markupForm, legend string) {
		if n.Type == html.ElementNode {
			switch n.DataAtom {
			case atom.Title:
				pg.Title = text(n)
			case atom.H1:
				pg.Heading = text(n)
			case atom.Label:
				if id, ok := attr(n, "for"); ok {
					labels[id] = text(n)
				}
			case atom.Fieldset:
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.DataAtom == atom.Legend {
						legend = text(c)
					}
				}
			case atom.Div:
				if v, _ := attr(n, "role"); v == "alert" {
					for li := range n.Descendants() {
						if li.DataAtom == atom.Li {
							pg.Errors = append(pg.Errors, text(li))
						}
					}
				}
			case atom.Form:
				action, _ := attr(n, "action")
				form = &markupForm{Action: action}
				forms = append(forms, form)
			case atom.Input, atom.Select:
				c := &control{Tag: n.Data, Legend: legend}
				c.Type, _ = attr(n, "type")
				c.Name, _ = attr(n, "name")
				c.ID, _ = attr(n, "id")
				c.Value, _ = attr(n, "value")
				c.Autocomplete, _ = attr(n, "autocomplete")
				c.InputMode, _ = attr(n, "inputmode")
				c.Pattern, _ = attr(n, "pattern")
				c.Min, _ = attr(n, "min")
				c.Max, _ = attr(n, "max")
				c.Step, _ = attr(n, "step")
				_, c.Required = attr(n, "required")
				_, c.Checked = attr(n, "checked")
				if v, ok := attr(n, "minlength"); ok {
					c.MinLength, _ = strconv.Atoi(v)
				}
				if v, ok := attr(n, "maxlength"); ok {
					c.MaxLength, _ = strconv.Atoi(v)
				}
				if n.DataAtom == atom.Select {
					c.Type = "select"
					for o := range n.Descendants() {
						if o.DataAtom == atom.Option {
							if v, _ := attr(o, "value"); v != "" {
								c.Options = append(c.Options, v)
							}
						}
					}
				}
				if c.Type == "" {
					c.Type = "text"
				}
				if form != nil {
					if c.Type == "hidden" {
						form.Hidden = append(form.Hidden, [2]string{c.Name, c.Value})
					} else {
						form.Controls = append(form.Controls, c)
					}
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch, form, legend)
		}
	}
	walk(doc, nil, "")
	for _, f := range forms {
		for _, c := range f.Controls {
			c.Label = labels[c.ID]
		}
		action := ""
		for _, h := range f.Hidden {
			if h[0] == "_action" {
				action = h[1]
			}
		}
		switch action {
		case "":
			pg.Answer = f
		case "back":
			pg.Back = true
		}
	}
	return pg, nil
}

// filler chooses answers from the markup alone. Now is the time of the
// walk (for a card's expiry, which must be in the future).
type filler struct {
	now time.Time
}

// samples are how people's details are written, by autocomplete token
// (the HTML standard's autofill field names), in a few forms each: the
// first that the control's constraints accept is used.
var samples = map[string][]string{
	"name":           {"Ada Lovelace"},
	"given-name":     {"Ada"},
	"family-name":    {"Lovelace"},
	"email":          {"ada@example.com"},
	"tel":            {"020 7946 0958", "02079460958", "+442079460958"},
	"tel-national":   {"020 7946 0958", "02079460958"},
	"street-address": {"12 St James's Square"},
	"address-line1":  {"12 St James's Square"},
	"address-line2":  {"St James's"},
	"address-level2": {"London"},
	"address-level1": {"Greater London"},
	"postal-code":    {"SW1Y 4JH", "SW1Y4JH"},
	"country-name":   {"United Kingdom"},
	"organization":   {"Analytical Engines Ltd"},
	"bday":           {"1985-12-10", "10/12/1985"},
	"bday-day":       {"10"},
	"bday-month":     {"12"},
	"bday-year":      {"1985"},
	"cc-name":        {"Ada Lovelace"},
	"cc-number":      {"4111 1111 1111 1111", "4111111111111111"},
}

// value returns what to answer in a text-like control (text, email, tel,
// number), or an error saying why nothing fits.
func (f filler) value(c *control) (string, error) {
	var candidates []string
	tokens := strings.Fields(c.Autocomplete)
	if len(tokens) > 0 {
		token := tokens[len(tokens)-1] // "shipping postal-code": the field name is last
		candidates = samples[token]
		if token == "cc-exp" {
			// A month in the future, in the forms cards print it.
			exp := f.now.AddDate(3, 0, 0)
			candidates = []string{exp.Format("01/06"), exp.Format("01/2006"), exp.Format("0106")}
		}
	}
	switch c.Type {
	case "email":
		candidates = append(candidates, "someone@example.com")
	case "tel":
		candidates = append(candidates, "020 7946 0958")
	case "number":
		candidates = append(candidates, numberIn(c))
	}
	if c.InputMode == "numeric" && c.Pattern == "" {
		candidates = append(candidates, "1")
	}
	if c.Pattern != "" {
		if g, err := fromPattern(c.Pattern, max(c.MinLength, 1)); err == nil {
			candidates = append(candidates, g)
		}
	}
	candidates = append(candidates, padTo("Sample answer", c.MinLength))
	for _, v := range candidates {
		if c.accepts(v) == nil {
			return v, nil
		}
	}
	return "", fmt.Errorf("no answer fits %s %q (%s): tried %q: %v", c.Type, c.Name, c.Label, candidates, c.accepts(candidates[len(candidates)-1]))
}

func padTo(s string, n int) string {
	for len([]rune(s)) < n {
		s += " x"
	}
	return s
}

// numberIn returns a number the control's min, max and step accept: its
// least, or 1.
func numberIn(c *control) string {
	v := 1.0
	if lo, err := strconv.ParseFloat(c.Min, 64); err == nil {
		v = lo
	} else if hi, err := strconv.ParseFloat(c.Max, 64); err == nil && hi < v {
		v = hi
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// accepts checks a value against the control's constraints, as a browser
// validates them.
func (c *control) accepts(v string) error {
	n := len([]rune(v))
	switch {
	case c.Required && v == "":
		return fmt.Errorf("required")
	case c.MaxLength > 0 && n > c.MaxLength:
		return fmt.Errorf("longer than %d", c.MaxLength)
	case c.MinLength > 0 && n < c.MinLength:
		return fmt.Errorf("shorter than %d", c.MinLength)
	}
	if c.Pattern != "" {
		re, err := patternRE(c.Pattern)
		if err != nil {
			return err
		}
		if !re.MatchString(v) {
			return fmt.Errorf("does not match %s", c.Pattern)
		}
	}
	if c.Type == "email" && !regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`).MatchString(v) {
		return fmt.Errorf("not an e-mail address")
	}
	if c.Type == "number" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		if lo, err := strconv.ParseFloat(c.Min, 64); err == nil && x < lo {
			return fmt.Errorf("below %s", c.Min)
		}
		if hi, err := strconv.ParseFloat(c.Max, 64); err == nil && x > hi {
			return fmt.Errorf("above %s", c.Max)
		}
		if step, err := strconv.ParseFloat(c.Step, 64); err == nil && step > 0 {
			base, _ := strconv.ParseFloat(c.Min, 64)
			if k := (x - base) / step; math.Abs(k-math.Round(k)) > 1e-9 {
				return fmt.Errorf("not a step of %s", c.Step)
			}
		}
	}
	return nil
}

// patternRE reads an HTML pattern (an ECMAScript expression matched
// against the whole value) as a Go expression: the syntax a page uses
// differs from Go's only in \u{...} and an escaped slash.
func patternRE(p string) (*regexp.Regexp, error) {
	p = regexp.MustCompile(`\\u\{([0-9A-Fa-f]+)\}`).ReplaceAllString(p, `\x{$1}`)
	p = strings.ReplaceAll(p, `\/`, `/`)
	return regexp.Compile("^(?:" + p + ")$")
}

// fromPattern makes the shortest plain value a pattern accepts (at least
// minLen long), choosing letters and digits over punctuation.
func fromPattern(p string, minLen int) (string, error) {
	re, err := patternRE(p)
	if err != nil {
		return "", err
	}
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var gen func(r *syntax.Regexp, grow bool) error
	gen = func(r *syntax.Regexp, grow bool) error {
		switch r.Op {
		case syntax.OpLiteral:
			b.WriteString(string(r.Rune))
		case syntax.OpCharClass:
			b.WriteRune(pick(r.Rune))
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('a')
		case syntax.OpCapture:
			return gen(r.Sub[0], grow)
		case syntax.OpConcat:
			for _, s := range r.Sub {
				if err := gen(s, grow); err != nil {
					return err
				}
			}
		case syntax.OpAlternate:
			return gen(r.Sub[0], grow)
		case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
			lo, hi := 0, -1
			switch r.Op {
			case syntax.OpPlus:
				lo = 1
			case syntax.OpQuest:
				hi = 1
			case syntax.OpRepeat:
				lo, hi = r.Min, r.Max
			}
			n := lo
			if grow && (hi == -1 || hi > lo) {
				n = lo + 1
			}
			for range n {
				if err := gen(r.Sub[0], grow); err != nil {
					return err
				}
			}
		case syntax.OpBeginText, syntax.OpEndText, syntax.OpEmptyMatch:
		default:
			return fmt.Errorf("pattern %s: cannot make a value for %s", p, r.Op)
		}
		return nil
	}
	for grow := range 2 {
		b.Reset()
		if err := gen(r, grow == 1); err != nil {
			return "", err
		}
		if len([]rune(b.String())) >= minLen {
			break
		}
	}
	return b.String(), nil
}

// pick chooses a character of a class: a capital letter, a digit, a small
// letter, then anything printable but a space.
func pick(ranges []rune) rune {
	in := func(c rune) bool {
		for i := 0; i+1 < len(ranges); i += 2 {
			if ranges[i] <= c && c <= ranges[i+1] {
				return true
			}
		}
		return false
	}
	for _, c := range "A0a" {
		if in(c) {
			return c
		}
	}
	for i := 0; i+1 < len(ranges); i += 2 {
		for c := ranges[i]; c <= ranges[i+1] && c < ranges[i]+128; c++ {
			if unicode.IsPrint(c) && c != ' ' {
				return c
			}
		}
	}
	return ranges[0]
}

// fill answers the form: every required control, and every control with
// a token or a group (radios, dates) to fill; an optional tick box is left
// unticked. It returns the form's values.
func (f filler) fill(form *markupForm) ([][2]string, error) {
	out := append([][2]string{}, form.Hidden...)
	done := map[string]bool{}
	for _, c := range form.Controls {
		if c.Name == "" || done[c.Name] {
			continue
		}
		switch c.Type {
		case "checkbox":
			if c.Required {
				v := c.Value
				if v == "" {
					v = "on"
				}
				out = append(out, [2]string{c.Name, v})
			}
		case "radio":
			// The first of the group: every option is an answer the page
			// offers.
			done[c.Name] = true
			out = append(out, [2]string{c.Name, c.Value})
		case "select":
			if len(c.Options) == 0 {
				return nil, fmt.Errorf("select %s (%s) offers nothing", c.Name, c.Label)
			}
			out = append(out, [2]string{c.Name, c.Options[0]})
		default:
			if !c.Required && c.Autocomplete == "" && c.Type != "number" && c.Value == "" {
				// An optional question with nothing to say about it.
				if c.Legend == "" {
					continue
				}
			}
			v, err := f.value(c)
			if err != nil {
				return nil, err
			}
			out = append(out, [2]string{c.Name, v})
		}
	}
	return out, nil
}
