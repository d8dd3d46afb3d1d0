package node_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"understudy/broker/brokertest"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/node/nodetest"
)

// browser is an HTML client: it keeps the cookie and reads the hidden
// fields of the page it was last shown.
type browser struct {
	t          *testing.T
	base       string
	hc         *http.Client
	html       string
	seq, token string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

var (
	seqRE   = regexp.MustCompile(`name="_seq" value="(\d+)"`)
	csrfRE  = regexp.MustCompile(`name="_csrf" value="([^"]*)"`)
	titleRE = regexp.MustCompile(`<title>([^<]*)</title>`)
	h1RE    = regexp.MustCompile(`<h1>([^<]*)`)
)

func (b *browser) read(resp *http.Response, err error) int {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.html = string(body)
	if m := seqRE.FindStringSubmatch(b.html); m != nil {
		b.seq = m[1]
	}
	if m := csrfRE.FindStringSubmatch(b.html); m != nil {
		b.token = m[1]
	}
	return resp.StatusCode
}

func (b *browser) get() int { return b.read(b.hc.Get(b.base + "/")) }

// post sends a form of the page last shown, with vals.
func (b *browser) post(vals url.Values) int {
	form := url.Values{"_seq": {b.seq}, "_csrf": {b.token}}
	for k, v := range vals {
		form[k] = v
	}
	return b.read(b.hc.PostForm(b.base+"/", form))
}

func (b *browser) title() string {
	if m := titleRE.FindStringSubmatch(b.html); m != nil {
		return m[1]
	}
	return ""
}

func (b *browser) heading() string {
	if m := h1RE.FindStringSubmatch(b.html); m != nil {
		return strings.TrimSpace(m[1])
	}
	return ""
}

func (b *browser) has(t *testing.T, what string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(b.html, w) {
			t.Errorf("%s lacks %s", what, w)
		}
	}
}

// TestPageMarkup: the page says what the server checks and ties help and
// errors to their inputs; a page with errors says so in its title and
// lists them at the top, each linked to its field.
func TestPageMarkup(t *testing.T) {
	_, a := setup(t)
	b := newBrowser(t, a.URL)
	b.get()
	if b.title() != "About you – Car insurance quote" {
		t.Errorf("title %q", b.title())
	}
	b.has(t, "first page",
		`<input type="text" id="f-name" name="name" value="" maxlength="80" required>`,
		`<input type="email" id="f-email" name="email" value="" autocomplete="email" maxlength="254" spellcheck="false" required>`,
		`<label for="f-born">Day</label><input type="text" class="w2" id="f-born" name="born-day"`,
		`name="born-year" value="" inputmode="numeric" maxlength="4" pattern="[0-9]*" required>`,
		`<legend>born<span class="req" aria-hidden="true">*</span></legend>`)
	if strings.Contains(b.html, `name="_action"`) {
		t.Error("the first page offers a way back")
	}

	if code := b.post(url.Values{"name": {""}, "email": {"nope"}, "born-day": {"30"}, "born-month": {"2"}, "born-year": {"1990"}}); code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid answers: %d", code)
	}
	if b.title() != "Error: About you – Car insurance quote" {
		t.Errorf("title of a page with errors %q", b.title())
	}
	b.has(t, "page with errors",
		`<div class="error-summary" role="alert" aria-labelledby="error-summary-title" tabindex="-1">`,
		`<li><a href="#f-name">Full name: This is required.</a></li>`,
		`<a href="#f-born">born: Enter a real date`,
		`<p class="error" id="e-name"><span class="visually-hidden">Error:</span> This is required.</p>`,
		`aria-describedby="e-name" aria-invalid="true">`,
		`<fieldset class="field invalid" aria-describedby="e-born">`,
		`name="born-day" value="30"`, `value="nope"`)

	// The vehicle page: a required choice of three is radios, a number
	// has its bounds, and the page has a way back.
	b.post(modeltest.Answers("applicant", 1, 0))
	if b.title() != "vehicle – Car insurance quote" {
		t.Errorf("second page's title %q", b.title())
	}
	b.has(t, "vehicle page",
		`<input type="number" id="f-mileage" name="mileage" value="" class="w10" min="0" max="500000" step="1">`,
		`<div class="radio"><input type="radio" id="f-use" name="use" value="private" required><label for="f-use">Private</label></div>`,
		`<input type="hidden" name="_action" value="back">`)
}

// TestStaleNoticeShown: a double submission is not applied again, and the
// page says so.
func TestStaleNoticeShown(t *testing.T) {
	_, a := setup(t)
	b := newBrowser(t, a.URL)
	b.get()
	seq, token := b.seq, b.token
	b.post(modeltest.Answers("applicant", 1, 0))
	if strings.Contains(b.html, `class="notice"`) {
		t.Fatal("a notice on an answer that was applied")
	}
	b.seq, b.token = seq, token // the same form again
	if code := b.post(modeltest.Answers("applicant", 1, 0)); code != http.StatusOK {
		t.Fatalf("double submission: %d", code)
	}
	b.has(t, "page after a double submission", `<div class="notice" role="status">`, "We had already received that page.")
	if b.heading() != "vehicle" {
		t.Errorf("after a double submission the page is %q", b.heading())
	}
}

// reviewApp is a small application with a check page.
func reviewApp() *model.Registry {
	return model.NewRegistry().MustRegister(model.App("order", 1,
		model.Interactive("name", model.Text("name").Label("Your name").Required()).Title("Your name"),
		model.Interactive("size", model.Choice("size", model.Opt("s", "Small"), model.Opt("l", "Large")).Label("Size").Required()).Title("Size"),
		model.Review("check"),
		model.Interactive("confirm", model.Bool("ok").Label("Send it").Required()).Title("Confirm"),
	).Title("An order"))
}

// TestBackAndChangeOverHTTP: Back and Change are forms of the page like
// an answer; a stale one is shown the current page.
func TestBackAndChangeOverHTTP(t *testing.T) {
	srv := brokertest.Start(t)
	a := nodetest.Start(t, nodetest.Config(t, srv.ClientConfig(t), "a", node.RolePrimary), reviewApp(), nil)
	b := newBrowser(t, a.URL)
	b.get()
	b.post(url.Values{"name": {"Ada"}})
	b.post(url.Values{"size": {"s"}})
	if b.heading() != "Check your answers" {
		t.Fatalf("at %q", b.heading())
	}
	b.has(t, "check page", `<dd>Ada</dd>`, `<dd>Small</dd>`, `<input type="hidden" name="_action" value="change">`,
		`Change<span class="visually-hidden"> Size</span>`)
	checkSeq, checkToken := b.seq, b.token
	section := regexp.MustCompile(`name="_change" value="(\d+)">\s*<button type="submit" class="link">Change<span class="visually-hidden"> Size`).FindStringSubmatch(b.html)
	if section == nil {
		t.Fatalf("no Change link for Size: %s", b.html)
	}
	b.post(url.Values{"_action": {"change"}, "_change": {section[1]}})
	if b.heading() != "Size" || !strings.Contains(b.html, `value="s" checked`) {
		t.Fatalf("change went to %q", b.heading())
	}
	b.post(url.Values{"size": {"l"}})
	if b.heading() != "Check your answers" || !strings.Contains(b.html, "<dd>Large</dd>") {
		t.Fatalf("after the change: %q", b.heading())
	}
	// The check page shown before the change is stale now.
	b.seq, b.token = checkSeq, checkToken
	b.post(url.Values{"_action": {"back"}})
	if !strings.Contains(b.html, `class="notice"`) || b.heading() != "Check your answers" {
		t.Errorf("a stale Back: %q", b.heading())
	}
	b.post(url.Values{"_action": {"back"}})
	if b.heading() != "Size" {
		t.Errorf("back from the check page: %q", b.heading())
	}
	// A change asked for where the page offers none.
	if code := b.post(url.Values{"_action": {"change"}, "_change": {section[1]}}); code != http.StatusBadRequest {
		t.Errorf("a change from a page that is not a review: %d", code)
	}
}

// TestBackSurvivesAFailover: a step back is replicated like an answer. The
// primary stores it and loses the group before it answers; the retry on
// the new primary is stale, and shows the page the step back went to:
// the step back was kept, not lost and not applied twice.
func TestBackSurvivesAFailover(t *testing.T) {
	srv := brokertest.Start(t)
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
	var armed atomic.Bool
	var a *running
	// A lease long enough that a loaded machine does not lose it before
	// the test cuts a off on purpose.
	lease := func(c *node.Config) { c.Group.Lease, c.Group.Heartbeat = 2*time.Second, 400*time.Millisecond }
	a = start(t, srv, "a", node.RolePrimary, lease, func(c *node.Config) {
		c.NATS.URL = proxy.URL()
		c.Fault = func(point string) {
			if point != "after-publish" || !armed.CompareAndSwap(true, false) {
				return
			}
			// Stored: now a is cut off from NATS and b takes over.
			proxy.Pause()
			member := node.Member(a.Node)
			brokertest.WaitFor(t, 10*time.Second, "a's lease to lapse", func() bool { return !member.Valid() })
		}
	})
	b := start(t, srv, "b", node.RoleBackup, lease)
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0) // applicant
	c.answer(1, 0) // vehicle
	if c.page.Step != "drivers/driver/who" || !c.page.Back {
		t.Fatalf("at %s, back %v", c.page.Step, c.page.Back)
	}
	seq, csrf := c.page.Seq, c.page.CSRF

	armed.Store(true)
	resp, p := c.postAt(seq, csrf, url.Values{"_action": {"back"}})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("step back with the lease lost after the publish: %d %+v", resp.StatusCode, p)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := node.Member(b.Node).Claim(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool { st, ok := b.Status(); return ok && st.Role == "primary" && st.Ready })
	proxy.Resume() // a comes back, and learns it lost the group

	// The gateway's retry, on the new primary.
	c.base = b.URL
	resp, p = c.postAt(seq, csrf, url.Values{"_action": {"back"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry on b: %d %+v", resp.StatusCode, p)
	}
	if p.Step != "vehicle" || p.Seq != seq+1 || !p.Stale {
		t.Fatalf("after the failover the session is at %s seq %d (stale %v), want vehicle at %d, the step back kept", p.Step, p.Seq, p.Stale, seq+1)
	}
	for _, f := range p.Fields {
		if f.Name == "registration" && f.Value != "LV21 XKE" {
			t.Errorf("the page gone back to holds %s=%q", f.Name, f.Value)
		}
	}
	if twice := appliedTwice(snapshotsOf(t, srv, p.Session)); len(twice) > 0 {
		t.Errorf("interactions stored twice: %v", twice)
	}
	// And the user carries on from there, on b.
	c.answer(1, 0)
	if c.page.Step != "drivers/driver/who" || c.page.Seq != seq+2 {
		t.Errorf("after answering the vehicle again: %s seq %d", c.page.Step, c.page.Seq)
	}
	st := latest(t, srv, c)
	if st.Node != "b" || st.Seq != c.page.Seq {
		t.Errorf("the stream's newest: node %s seq %d", st.Node, st.Seq)
	}
}
