//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"understudy/demo"
)

var shots = flag.String("e2e.shots", "", "write the README's screenshots of the demo (PNG) to this directory, e.g. ../../docs/screenshots (default: the artifacts directory)")

// checkers locates what TestDemoPages checks pages with: java, the W3C Nu
// checker's vnu.jar and axe-core's axe.min.js, which scripts/test installs
// (Debian's Java, and npm ci in test/e2e/checkers). In CI a missing one
// fails the test; elsewhere it skips, saying how to install it.
func checkers(t *testing.T) (java, vnu, axe string) {
	missing := func(what string) {
		msg := what + ": run scripts/test, or apt-get install openjdk-17-jre-headless npm && (cd test/e2e/checkers && npm ci --ignore-scripts)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		missing("java is missing")
	}
	vnu, _ = filepath.Abs("checkers/node_modules/vnu-jar/build/dist/vnu.jar")
	axe, _ = filepath.Abs("checkers/node_modules/axe-core/axe.min.js")
	for _, f := range []string{vnu, axe} {
		if _, err := os.Stat(f); err != nil {
			missing(f + " is missing")
		}
	}
	return java, vnu, axe
}

// captured is a page as served, for the checkers.
type captured struct {
	Name, HTML string
}

// TestDemoPages walks the demo through the gateway with a client that
// knows only what the markup says (see markup_test.go) and must finish
// without a page refusing its answers; then it checks every page it saw,
// a page with errors, the check page and the summary with the W3C Nu
// checker (no errors) and with axe-core in chromium (no violations, and
// every pattern attribute compiles as a browser compiles it), after
// showing that each checker reports a planted defect; and it takes the
// README's screenshots at desktop width and at 390 px.
func TestDemoPages(t *testing.T) {
	java, vnu, axe := checkers(t)
	exe := chromium(t)
	l := local(t, "node-a")
	base := l.GatewayURL(0)

	pages := walkByMarkup(t, base)
	pages = append(pages, errorPage(t, base))
	// The README's pictures show a quote as a person would answer it.
	pages = append(pages, walkWithAnswers(t, base)...)

	css := get(t, base+"/static/style.css")
	t.Run("nu", func(t *testing.T) { nuCheck(t, java, vnu, pages) })
	t.Run("axe", func(t *testing.T) { axeCheck(t, exe, axe, css, pages) })
	t.Run("screenshots", func(t *testing.T) { screenshots(t, exe, css, pages) })
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// walkByMarkup answers the demo from its first page to its summary with
// filler, and returns every page it was shown.
func walkByMarkup(t *testing.T, base string) []captured {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	f := filler{now: time.Now()}
	var pages []captured
	src := get(t, base+"/") // no cookie yet: hc gets one below
	resp, err := hc.Get(base + "/")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		src = string(b)
	}
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for i := 0; ; i++ {
		if i > 30 {
			t.Fatalf("no end after %v", steps)
		}
		pg, err := readMarkup(src)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%02d-%s", i, slug(pg.Heading))
		pages = append(pages, captured{name, src})
		steps = append(steps, pg.Heading)
		if len(pg.Errors) > 0 || strings.HasPrefix(pg.Title, "Error") {
			t.Fatalf("page %q refused what the markup let the client answer: %q (pages so far %q)", pg.Heading, pg.Errors, steps)
		}
		if pg.Answer == nil {
			break // the end: nothing left to answer
		}
		values, err := f.fill(pg.Answer)
		if err != nil {
			t.Fatalf("page %q: %v", pg.Heading, err)
		}
		form := url.Values{}
		for _, kv := range values {
			form.Add(kv[0], kv[1])
		}
		action, _ := url.Parse(pg.Answer.Action)
		resp, err := hc.PostForm(must(url.Parse(base)).ResolveReference(action).String(), form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			pg, _ := readMarkup(string(b))
			t.Fatalf("page %q answered %v: %d %q", steps[len(steps)-1], form, resp.StatusCode, pg.Errors)
		}
		src = string(b)
	}
	t.Logf("walked %d pages by their markup alone: %q", len(steps), steps)
	for _, want := range []string{"About you", "Check your answers", "Card details", "Your car is insured"} {
		if !slices.Contains(steps, want) {
			t.Errorf("the walk never saw %q", want)
		}
	}
	return pages
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func slug(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
	return strings.Trim(s, "-")
}

// walkWithAnswers answers the demo as its customer 0 would, with two
// drivers, and returns the check page and the summary.
func walkWithAnswers(t *testing.T, base string) []captured {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := hc.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	var out []captured
	driver := 0
	for range 30 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		pg, err := readMarkup(string(b))
		if err != nil {
			t.Fatal(err)
		}
		switch pg.Heading {
		case "Check your answers":
			out = append(out, captured{"answered-check", string(b)})
		case "Your car is insured":
			return append(out, captured{"answered-summary", string(b)})
		}
		if pg.Answer == nil {
			t.Fatalf("no form on %q", pg.Heading)
		}
		var step string
		for _, h := range pg.Answer.Hidden {
			if h[0] == "_seq" {
				step = h[1]
			}
		}
		form := demo.Answers(demoStep(pg.Heading), 0)
		if strings.HasPrefix(pg.Heading, "Drivers") {
			form = demo.DriverAnswers(0, driver, driver == 0)
			driver++
		}
		for _, h := range pg.Answer.Hidden {
			form.Set(h[0], h[1])
		}
		if resp, err = hc.PostForm(base+"/", form); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%q at seq %s: %d", pg.Heading, step, resp.StatusCode)
		}
	}
	t.Fatal("no end")
	return nil
}

// demoStep names the demo's page by its heading, for demo.Answers.
func demoStep(heading string) string {
	return map[string]string{"About you": demo.StepApplicant, "Your car": demo.StepVehicle, "Your cover": demo.StepCover,
		"Optional extras": demo.StepAddons, "Payment": demo.StepMethod, "Card details": demo.StepCard, "Check and confirm": demo.StepConfirm}[heading]
}

// errorPage answers the first page with nothing and returns the page that
// refuses it.
func errorPage(t *testing.T, base string) captured {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := hc.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pg, err := readMarkup(string(b))
	if err != nil || pg.Answer == nil {
		t.Fatalf("first page: %v", err)
	}
	form := url.Values{}
	for _, h := range pg.Answer.Hidden {
		form.Set(h[0], h[1])
	}
	form.Set("born-day", "31")
	form.Set("born-month", "2")
	resp, err = hc.PostForm(base+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("an empty first page: %d", resp.StatusCode)
	}
	if pg, _ := readMarkup(string(b)); len(pg.Errors) < 3 || !strings.HasPrefix(pg.Title, "Error: ") {
		t.Fatalf("the refused page: title %q, errors %q", pg.Title, pg.Errors)
	}
	return captured{"errors", string(b)}
}

// nuMessage is one message of vnu's JSON output.
type nuMessage struct {
	Type, SubType, URL, Message, Extract string
	LastLine                             int
}

// nu runs the W3C Nu checker on files and returns its messages.
func nu(t *testing.T, java, vnu string, files []string) []nuMessage {
	t.Helper()
	cmd := exec.Command(java, append([]string{"-jar", vnu, "--format", "json", "--exit-zero-always"}, files...)...)
	var out strings.Builder
	cmd.Stderr = &out // vnu writes its report to stderr
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("vnu: %v\n%s", err, out.String())
	}
	var report struct{ Messages []nuMessage }
	if err := json.Unmarshal([]byte(out.String()), &report); err != nil {
		t.Fatalf("vnu's report: %v\n%s", err, out.String())
	}
	return report.Messages
}

// nuCheck validates every page; first, that the checker finds a planted
// duplicate id.
func nuCheck(t *testing.T, java, vnu string, pages []captured) {
	dir := t.TempDir()
	var files []string
	for _, p := range pages {
		f := filepath.Join(dir, p.Name+".html")
		if err := os.WriteFile(f, []byte(p.HTML), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	planted := filepath.Join(dir, "planted-duplicate-id.html")
	bad := strings.Replace(pages[0].HTML, "<header>", `<p id="f-name">a second element with the first field's id</p><header>`, 1)
	if bad == pages[0].HTML {
		t.Fatal("could not plant a duplicate id")
	}
	if err := os.WriteFile(planted, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range nu(t, java, vnu, append(files, planted)) {
		if m.Type != "error" && m.Type != "non-document-error" {
			continue
		}
		if strings.HasSuffix(m.URL, filepath.Base(planted)) {
			found = found || strings.Contains(m.Message, "Duplicate ID")
			continue
		}
		t.Errorf("%s line %d: %s\n  %s", filepath.Base(m.URL), m.LastLine, m.Message, m.Extract)
	}
	if !found {
		t.Fatal("the Nu checker did not report the planted duplicate id: its silence proves nothing")
	}
	t.Logf("the Nu checker found no error in %d pages (and found the planted one)", len(files))
}

// chrome starts Debian's chromium, headless, at a window of width×height.
func chrome(t *testing.T, exe string, width, height int) (context.Context, func()) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root, chromium needs it
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	return ctx, func() { cancelT(); cancelB(); cancelA() }
}

// servePages serves the captured pages, and the style sheet they link, so
// that chromium renders them as the gateway served them.
func servePages(t *testing.T, css string, pages []captured) *httptest.Server {
	byName := map[string]string{}
	for _, p := range pages {
		byName["/"+p.Name+".html"] = p.HTML
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/static/style.css" {
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, css)
			return
		}
		page, ok := byName[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// axeViolation is one rule a page breaks, as axe-core reports it.
type axeViolation struct {
	ID, Impact, Help string
	Targets          []string
}

// axeRun loads a page, injects axe-core and runs it with its default
// rules; it also reports every pattern attribute chromium cannot compile
// with the v flag (it would then not check the field at all).
func axeRun(ctx context.Context, source, pageURL string) ([]axeViolation, []string, error) {
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		return nil, nil, err
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](source+";true")); err != nil {
		return nil, nil, fmt.Errorf("inject axe-core: %w", err)
	}
	const run = `axe.run(document).then(r => JSON.stringify(r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(" "))}))))`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, nil, fmt.Errorf("axe.run: %w", err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		return nil, nil, err
	}
	const patterns = `[...document.querySelectorAll("[pattern]")].filter(e => {
		try { new RegExp("^(?:" + e.getAttribute("pattern") + ")$", "v"); return false } catch (_) { return true }
	}).map(e => e.name + ": " + e.getAttribute("pattern"))`
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](patterns))
	return vs, bad, err
}

// axeCheck runs axe-core on every page; first, on a planted page with an
// input that has no label and a pattern a browser cannot compile.
func axeCheck(t *testing.T, exe, axe, css string, pages []captured) {
	source, err := os.ReadFile(axe)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(pages[0].HTML, "<header>", `<input type="text" name="unlabelled" pattern="[0-9 ()-]+"><header>`, 1)
	srv := servePages(t, css, append(pages, captured{"planted", bad}))
	ctx, cancel := chrome(t, exe, 1280, 900)
	defer cancel()

	vs, pats, err := axeRun(ctx, string(source), srv.URL+"/planted.html")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(vs, func(v axeViolation) bool { return v.ID == "label" }) {
		t.Fatalf("axe-core did not report the planted input without a label (it found %+v): its silence proves nothing", vs)
	}
	if len(pats) != 1 {
		t.Fatalf("the pattern check did not report the planted pattern: %q", pats)
	}
	for _, p := range pages {
		vs, pats, err := axeRun(ctx, string(source), srv.URL+"/"+p.Name+".html")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			t.Errorf("%s: %s (%s): %s at %q", p.Name, v.ID, v.Impact, v.Help, v.Targets)
		}
		for _, bad := range pats {
			t.Errorf("%s: chromium cannot compile the pattern of %s", p.Name, bad)
		}
	}
	t.Logf("axe-core found no violation in %d pages (and found the planted one)", len(pages))
}

// screenshots takes the README's pictures: the first page, a page with
// errors, the check page and the summary, at desktop width and at 390 px.
func screenshots(t *testing.T, exe, css string, pages []captured) {
	out := *shots
	if out == "" {
		out = artifacts(t)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := servePages(t, css, pages)
	want := []struct{ file, page string }{
		{"first-page", "00-about-you"}, {"errors", "errors"}, {"check", "answered-check"}, {"summary", "answered-summary"},
	}
	for _, w := range want {
		i := slices.IndexFunc(pages, func(p captured) bool { return p.Name == w.page })
		if i < 0 {
			t.Fatalf("no page %q to photograph", w.page)
		}
		for _, size := range []struct {
			name          string
			width, height int64
		}{{"desktop", 1280, 900}, {"390px", 390, 844}} {
			ctx, cancel := chrome(t, exe, 1280, 900)
			var shot []byte
			err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height), chromedp.Navigate(srv.URL+"/"+pages[i].Name+".html"))
			if err == nil {
				shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: a PNG (below, a JPEG)
			}
			cancel()
			if err == nil && len(shot) == 0 {
				err = errors.New("empty")
			}
			if err != nil {
				t.Fatalf("screenshot of %s at %s: %v", w.file, size.name, err)
			}
			name := filepath.Join(out, w.file+"-"+size.name+".png")
			if err := os.WriteFile(name, shot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	abs, _ := filepath.Abs(out)
	t.Logf("screenshots in %s", abs)
}
