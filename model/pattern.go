package model

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
)

// htmlPattern writes re as the value of an HTML pattern attribute, so that
// a browser checks what the server checks. A browser compiles the
// attribute as an ECMAScript regular expression with the v flag and
// matches it against the whole value; the syntax differs from Go's (a
// class such as [0-9 ()-] is an error with the v flag), so the expression
// is printed again from its parsed form rather than copied. It returns ""
// for what it cannot say the same way (word boundaries, line anchors).
func htmlPattern(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return ""
	}
	// The attribute is anchored at both ends: strip the expression's own
	// anchors, or let it match anywhere when it has none.
	var subs []*syntax.Regexp
	if r.Op == syntax.OpConcat {
		subs = r.Sub
	} else {
		subs = []*syntax.Regexp{r}
	}
	begin := len(subs) > 0 && subs[0].Op == syntax.OpBeginText
	if begin {
		subs = subs[1:]
	}
	end := len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText
	if end {
		subs = subs[:len(subs)-1]
	}
	var b strings.Builder
	if !begin {
		b.WriteString("[\\s\\S]*")
	}
	for _, s := range subs {
		if !writePattern(&b, s) {
			return ""
		}
	}
	if !end {
		b.WriteString("[\\s\\S]*")
	}
	return b.String()
}

// writePattern writes r in ECMAScript syntax; false when it cannot.
func writePattern(b *strings.Builder, r *syntax.Regexp) bool {
	switch r.Op {
	case syntax.OpEmptyMatch:
		b.WriteString("(?:)")
	case syntax.OpLiteral:
		for _, c := range r.Rune {
			if r.Flags&syntax.FoldCase != 0 && unicode.SimpleFold(c) != c {
				writeClass(b, foldRanges(c))
				continue
			}
			writeLiteral(b, c)
		}
	case syntax.OpCharClass:
		writeClass(b, r.Rune)
	case syntax.OpAnyCharNotNL:
		b.WriteString(".")
	case syntax.OpAnyChar:
		b.WriteString("[\\s\\S]")
	case syntax.OpCapture:
		if r.Sub[0].Op == syntax.OpAlternate {
			return writePattern(b, r.Sub[0]) // grouped already
		}
		b.WriteString("(?:")
		if !writePattern(b, r.Sub[0]) {
			return false
		}
		b.WriteString(")")
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		sub := r.Sub[0]
		// A group writes its own (?:...).
		atom := sub.Op == syntax.OpCharClass || sub.Op == syntax.OpAnyChar || sub.Op == syntax.OpAnyCharNotNL ||
			sub.Op == syntax.OpLiteral && len(sub.Rune) == 1 || sub.Op == syntax.OpCapture || sub.Op == syntax.OpAlternate
		if !atom {
			b.WriteString("(?:")
		}
		if !writePattern(b, sub) {
			return false
		}
		if !atom {
			b.WriteString(")")
		}
		switch r.Op {
		case syntax.OpStar:
			b.WriteString("*")
		case syntax.OpPlus:
			b.WriteString("+")
		case syntax.OpQuest:
			b.WriteString("?")
		default:
			switch {
			case r.Max == -1:
				fmt.Fprintf(b, "{%d,}", r.Min)
			case r.Max == r.Min:
				fmt.Fprintf(b, "{%d}", r.Min)
			default:
				fmt.Fprintf(b, "{%d,%d}", r.Min, r.Max)
			}
		}
	case syntax.OpConcat:
		for _, s := range r.Sub {
			if !writePattern(b, s) {
				return false
			}
		}
	case syntax.OpAlternate:
		b.WriteString("(?:")
		for i, s := range r.Sub {
			if i > 0 {
				b.WriteString("|")
			}
			if !writePattern(b, s) {
				return false
			}
		}
		b.WriteString(")")
	default:
		// Anchors inside the expression, line anchors, word boundaries,
		// and no-match: not said the same way in a pattern attribute.
		return false
	}
	return true
}

// foldRanges returns the ranges of c and the letters it folds to.
func foldRanges(c rune) []rune {
	var out []rune
	for f := c; ; {
		out = append(out, f, f)
		if f = unicode.SimpleFold(f); f == c {
			return out
		}
	}
}

// writeLiteral writes c outside a class.
func writeLiteral(b *strings.Builder, c rune) {
	switch {
	case strings.ContainsRune(`^$\.*+?()[]{}|/`, c):
		b.WriteByte('\\')
		b.WriteRune(c)
	case c < 0x20 || c == 0x7f || !unicode.IsPrint(c):
		fmt.Fprintf(b, "\\u{%X}", c)
	default:
		b.WriteRune(c)
	}
}

// writeClass writes a class of ranges [lo, hi, lo, hi...]. With the v
// flag, ( ) [ ] { } / - \ | must be escaped inside a class, and doubled
// punctuation is reserved: every punctuation character is escaped, which
// the v flag allows for exactly these.
func writeClass(b *strings.Builder, ranges []rune) {
	b.WriteByte('[')
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		writeClassChar(b, lo)
		if hi != lo {
			if hi > lo+1 {
				b.WriteByte('-')
			}
			writeClassChar(b, hi)
		}
	}
	b.WriteByte(']')
}

func writeClassChar(b *strings.Builder, c rune) {
	switch {
	case strings.ContainsRune(`()[]{}/-\|&!#%,:;<=>@`+"`~", c):
		b.WriteByte('\\')
		b.WriteRune(c)
	case c == '^' || c == '$' || c == '*' || c == '+' || c == '.' || c == '?':
		// Not reserved singly, but escaped so that no two of them ever
		// stand side by side (doubled, they are reserved).
		b.WriteByte('\\')
		b.WriteRune(c)
	case c < 0x20 || c == 0x7f || c > 0x7e:
		fmt.Fprintf(b, "\\u{%X}", c)
	default:
		b.WriteRune(c)
	}
}
