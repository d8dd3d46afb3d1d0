//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"understudy/demo"
)

// artifacts is where the browser test saves its screenshots:
// $UNDERSTUDY_ARTIFACTS, or test/e2e/artifacts.
func artifacts(t *testing.T) string {
	dir := os.Getenv("UNDERSTUDY_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds Debian's chromium. In CI a missing browser fails the test;
// elsewhere it skips, saying how to install one.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing: scripts/test installs it (apt-get install chromium)")
	}
	t.Skip("chromium is missing: install Debian's chromium (apt-get install chromium) or run scripts/test")
	return ""
}

// TestBrowserThroughFailover: a real browser fills in half of the demo
// application, the primary is killed with SIGKILL, and the same browser
// finishes the application. The summary shows every answer, and no page
// along the way was an error page.
func TestBrowserThroughFailover(t *testing.T) {
	exe := chromium(t)
	l := local(t, "node-a", "node-b")
	out := artifacts(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root, chromium needs it
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), // a closed network: stay quiet
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 1400),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()

	const customer = 0 // Ada Lovelace: comprehensive cover, so the extras page shows
	var typed []string // what the summary must show
	var pages []string
	if err := chromedp.Do(ctx, chromedp.Navigate(l.GatewayURL(0)+"/")); err != nil {
		t.Fatal(err)
	}
	evalBool := func(expr string) bool {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		return v
	}
	step := func() string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("h1") ? document.querySelector("h1").innerText : ""`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// fill answers the current page, as a person would type, and submits.
	fill := func(vals map[string][]string) {
		js, _ := json.Marshal(vals)
		script := `(function(vals) {
			for (const [name, v] of Object.entries(vals)) {
				const day = document.getElementsByName(name + "-day")[0];
				if (day) { // a date: typed as day, month and year
					const [y, m, d] = v[0].split("-");
					day.value = String(Number(d));
					document.getElementsByName(name + "-month")[0].value = String(Number(m));
					document.getElementsByName(name + "-year")[0].value = y;
					continue;
				}
				const els = document.getElementsByName(name);
				if (!els[0]) continue;
				if (els[0].type === "radio") { for (const r of els) r.checked = r.value === v[0]; continue; }
				if (els[0].type === "checkbox") { els[0].checked = v[0] === "on"; } else { els[0].value = v[0]; }
			}
			return document.querySelector("form.answer input[name=_seq]").value;
		})(` + string(js) + `)`
		seq, err := chromedp.Run(ctx, chromedp.Evaluate[string](script))
		if err == nil {
			err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form.answer button[type=submit]`)))
		}
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the next page: its sequence, or the summary.
		deadline := time.Now().Add(30 * time.Second)
		for {
			next, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("form.answer input[name=_seq]") || {value: document.getElementById("summary") ? "done" : ""}).value`))
			if next != "" && next != seq {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new page after %q", step())
			}
			time.Sleep(20 * time.Millisecond) // polling the browser
		}
	}
	errorTitles := []string{"Something went wrong", "Please try again", "Your session", "Bad request", "Too much", "cannot be accepted", "Too many"}
	page := func() string {
		h := step()
		for _, e := range errorTitles {
			if strings.Contains(h, e) {
				t.Fatalf("an error page was shown: %q (after %v)", h, pages)
			}
		}
		pages = append(pages, h)
		return h
	}
	answer := func(vals map[string][]string, keep ...string) {
		page()
		for _, k := range keep {
			v := vals[k][0]
			if d, err := time.Parse(time.DateOnly, v); err == nil {
				v = d.Format("2 January 2006") // a summary shows dates for people
			}
			typed = append(typed, v)
		}
		fill(vals)
	}
	answer(demo.Answers(demo.StepApplicant, customer), "name", "email", "street", "city", "postcode", "born")
	answer(demo.Answers(demo.StepVehicle, customer), "registration")
	answer(demo.DriverAnswers(customer, 0, true), "name")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "before-kill.png"), shot, 0o644)
	l.Nodes["node-a"].Kill()
	t.Log("killed node-a with SIGKILL")

	answer(demo.DriverAnswers(customer, 1, false), "name")
	for i := 0; i < 10; i++ {
		if evalBool(`!!document.getElementById("summary")`) {
			break
		}
		h := page()
		switch {
		case strings.Contains(h, "cover") || strings.Contains(h, "Cover"):
			fill(demo.Answers(demo.StepCover, customer))
		case strings.Contains(h, "xtra"):
			fill(demo.Answers(demo.StepAddons, customer))
		case strings.Contains(h, "ay"): // "How would you like to pay"
			if evalBool(`!!document.getElementsByName("number")[0]`) {
				vals := demo.Answers(demo.StepCard, customer)
				typed = append(typed, vals["holder"][0])
				fill(vals)
			} else {
				fill(demo.Answers(demo.StepMethod, customer))
			}
		default:
			card, agree := evalBool(`!!document.getElementsByName("number")[0]`), evalBool(`!!document.getElementsByName("agree")[0]`)
			switch {
			case strings.Contains(h, "Check your answers"):
				fill(map[string][]string{})
			case card:
				vals := demo.Answers(demo.StepCard, customer)
				typed = append(typed, vals["holder"][0])
				fill(vals)
			case agree:
				fill(demo.Answers(demo.StepConfirm, customer))
			default:
				t.Fatalf("unexpected page %q", h)
			}
		}
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#summary")))
	if err == nil {
		shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	}
	if err != nil {
		t.Fatalf("no summary page after %v: %v", pages, err)
	}
	os.WriteFile(filepath.Join(out, "summary.png"), shot, 0o644)
	for _, want := range typed {
		if !strings.Contains(text, want) {
			t.Errorf("the summary does not show %q", want)
		}
	}
	abs, _ := filepath.Abs(out)
	t.Logf("pages: %v; screenshots in %s", pages, abs)
	st := waitOwner(t, l, "node-b")
	if st.Epoch != 2 {
		t.Errorf("epoch %d", st.Epoch)
	}
}
