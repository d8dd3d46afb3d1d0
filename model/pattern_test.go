package model_test

import (
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"understudy/model"
)

// htmlPatternOf returns the pattern attribute a text field with re gets.
func htmlPatternOf(t testing.TB, re *regexp.Regexp) string {
	t.Helper()
	eng, run := onePage(t.(*testing.T), model.Text("a").Pattern(re, "no"))
	return page(t.(*testing.T), eng, run).Fields[0].Pattern
}

func TestHTMLPattern(t *testing.T) {
	for _, c := range []struct{ re, want string }{
		{`^[0-9]+$`, `[0-9]+`},
		{`^\d{2}/\d{2}$`, `[0-9]{2}\/[0-9]{2}`},
		{`^(0[1-9]|1[0-2])/[0-9]{2}$`, `(?:0[1-9]|1[0-2])\/[0-9]{2}`},
		// With the v flag a browser refuses ( ) - unescaped in a class.
		{`^\+?[0-9][0-9 ()-]{5,18}[0-9]$`, `\+?[0-9][ \(\)\-0-9]{5,18}[0-9]`},
		{`(?i)^ak$`, `[Aa][Kk\u{212A}]`},
		{`^a.c$`, `a.c`},
		{`^(ab)*$`, `(?:ab)*`},
		{`^x{3,}$`, `x{3,}`},
		{`abc`, `[\s\S]*abc[\s\S]*`}, // unanchored: anywhere in the value
		{`^a|b$`, ``},                // an anchor inside: not said the same way
		{`^\bword\b$`, ``},
		{`^[^0-9]$`, `[\u{0}-\/\:-\u{10FFFF}]`},
	} {
		if got := htmlPatternOf(t, regexp.MustCompile(c.re)); got != c.want {
			t.Errorf("%s: pattern %q, want %q", c.re, got, c.want)
		}
	}
}

// goSyntax reads an HTML pattern back as a Go expression: the two differ
// only in how they write a code point (\u{...}) and a slash.
func goSyntax(p string) string {
	p = regexp.MustCompile(`\\u\{([0-9A-F]+)\}`).ReplaceAllString(p, `\x{$1}`)
	return "^(?:" + strings.ReplaceAll(p, `\/`, `/`) + ")$"
}

// TestHTMLPatternMeansTheSame: for the patterns a page carries, a value
// matches the markup's pattern exactly when it matches the server's
// expression (read back in Go's syntax; test/e2e checks that a browser
// compiles them with the v flag).
func TestHTMLPatternMeansTheSame(t *testing.T) {
	for _, src := range []string{
		`^\+?[0-9][0-9 ()-]{5,18}[0-9]$`,
		`(?i)^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$`,
		`(?i)^[A-Z0-9][A-Z0-9 ]{0,6}[A-Z0-9]$`,
		`^(0[1-9]|1[0-2])/[0-9]{2}$`,
		`^[a-z]+(-[a-z]+)*$`,
		`ab?c`,
	} {
		server := regexp.MustCompile(src)
		markup := regexp.MustCompile(goSyntax(htmlPatternOf(t, server)))
		t.Run(src, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				s := rapid.StringOfN(rapid.SampledFrom([]rune("0123456789 ()-+/abcxyzABKZ\u212a\u017f")), 0, 12, -1).Draw(t, "value")
				if server.MatchString(s) != markup.MatchString(s) {
					t.Fatalf("%q: server %v, markup %v (%s)", s, server.MatchString(s), markup.MatchString(s), markup)
				}
			})
		})
	}
}
