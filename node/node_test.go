package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/node/nodetest"
	"understudy/snapshot"
)

// running is a node running in the test, with its base URL.
// running is a node run by start.
type running = nodetest.Running

func start(t *testing.T, srv *brokertest.Server, name string, role node.Role, mod ...func(*node.Config)) *running {
	t.Helper()
	cfg := nodetest.Config(t, srv.ClientConfig(t), name, role)
	for _, m := range mod {
		m(&cfg)
	}
	return nodetest.Start(t, cfg, modeltest.Registry(), modeltest.Resolver())
}

type client struct {
	t    *testing.T
	base string
	http *http.Client
	page page
}

type page struct {
	model.Page
	CSRF   string          `json:"csrf"`
	Stale  bool            `json:"stale"`
	Vals   json.RawMessage `json:"values"`
	Error  string          `json:"error"`
	Reason string          `json:"reason"`
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (c *client) do(req *http.Request) (*http.Response, page) {
	c.t.Helper()
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var p page
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &p); err != nil {
		c.t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
	if p.Error == "" && resp.StatusCode < 500 {
		c.page = p
	}
	return resp, p
}

func (c *client) get() (*http.Response, page) {
	req, _ := http.NewRequest("GET", c.base+"/", nil)
	return c.do(req)
}

// post submits vals from the current page.
func (c *client) post(vals url.Values) (*http.Response, page) {
	return c.postAt(c.page.Seq, c.page.CSRF, vals)
}

func (c *client) postAt(seq uint64, csrf string, vals url.Values) (*http.Response, page) {
	c.t.Helper()
	form := url.Values{}
	for k, v := range vals {
		form[k] = v
	}
	form.Set("_seq", strconv.FormatUint(seq, 10))
	form.Set("_csrf", csrf)
	req, _ := http.NewRequest("POST", c.base+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// answer submits the valid answers of the current page.
func (c *client) answer(drivers, i int) {
	c.t.Helper()
	resp, p := c.post(modeltest.Answers(c.page.Step, drivers, i))
	if resp.StatusCode != http.StatusOK || p.Stale {
		c.t.Fatalf("answering %s: %d %+v", c.page.Step, resp.StatusCode, p)
	}
}

func setup(t *testing.T) (*brokertest.Server, *running) {
	srv := brokertest.Start(t)
	return srv, start(t, srv, "a", node.RolePrimary)
}

func TestFullRunOverJSON(t *testing.T) {
	_, a := setup(t)
	c := newClient(t, a.URL)
	if resp, p := c.get(); resp.StatusCode != 200 || p.Step != "applicant" || p.Seq != 0 {
		t.Fatalf("first page: %d %+v", resp.StatusCode, p.Page)
	}
	driver := 0
	for i := 0; !c.page.Finished; i++ {
		if i > 40 {
			t.Fatal("no end")
		}
		if c.page.Step == "drivers/driver/more" {
			driver++
		}
		c.answer(2, driver)
	}
	if !strings.Contains(string(c.page.Vals), `"last4":"1111"`) || !strings.Contains(string(c.page.Vals), "Ada Lovelace") {
		t.Fatalf("final values: %s", c.page.Vals)
	}
}

func TestHTMLPages(t *testing.T) {
	_, a := setup(t)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(a.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(body)
	for _, want := range []string{`<label for="f-name">Full name`, `name="_seq" value="0"`, `name="_csrf"`, `type="email"`, `<h1>About you</h1>`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if resp.Header.Get(node.HeaderSeq) != "0" {
		t.Errorf("seq header %q", resp.Header.Get(node.HeaderSeq))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		cookie = c
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie %+v", cookie)
	}
	// Invalid input: the page again, with messages per field.
	resp, err = hc.PostForm(a.URL+"/", url.Values{"_seq": {"0"}, "name": {""}, "email": {"nope"}, "born": {"2020-01-01"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	html = string(body)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"This is required.", "e-mail address", "at least 18", `role="alert"`, `aria-invalid="true"`, `value="nope"`} {
		if !strings.Contains(html, want) {
			t.Errorf("invalid page lacks %q", want)
		}
	}
}

func TestStaleAndDoubleSubmissions(t *testing.T) {
	_, a := setup(t)
	c := newClient(t, a.URL)
	c.get()
	first := c.page
	c.answer(1, 0) // applicant
	// The same form again (a double submit, or a retry): not applied again.
	resp, p := c.postAt(first.Seq, first.CSRF, url.Values{"name": {"Somebody Else"}, "email": {"x@example.com"}, "born": {"1970-01-01"}})
	if resp.StatusCode != 200 || !p.Stale || resp.Header.Get(node.HeaderStale) != "1" || p.Step != "vehicle" || p.Seq != 1 {
		t.Fatalf("double submit: %d %+v", resp.StatusCode, p.Page)
	}
	if strings.Contains(string(p.Vals), "Somebody Else") {
		t.Fatal("a stale submission was applied")
	}
	// A second browser tab of the first page can't go back either.
	c.answer(1, 0) // vehicle
	_, p = c.postAt(1, first.CSRF, modeltest.Answers("vehicle", 1, 1))
	if !p.Stale || p.Seq != 2 {
		t.Fatalf("back button: %+v", p.Page)
	}
}

func TestSessionCap(t *testing.T) {
	srv := brokertest.Start(t)
	a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) { c.MaxSessions = 2 })
	var clients []*client
	for range 2 {
		c := newClient(t, a.URL)
		c.get()
		c.answer(1, 0)
		clients = append(clients, c)
	}
	c := newClient(t, a.URL)
	c.get()
	resp, _ := c.post(modeltest.Answers("applicant", 1, 0))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(node.HeaderUnavailable) != node.UnavailableCapacity {
		t.Fatalf("third session: %d %s", resp.StatusCode, resp.Header.Get(node.HeaderUnavailable))
	}
	for _, c := range clients {
		c.answer(1, 0) // existing sessions unaffected
	}
}

func TestRefusals(t *testing.T) {
	_, a := setup(t)
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0)
	// A form without the session's CSRF token.
	if resp, _ := c.postAt(c.page.Seq, "forged", modeltest.Answers("vehicle", 1, 0)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged CSRF token: %d", resp.StatusCode)
	}
	// An oversized body.
	big := url.Values{"name": {strings.Repeat("x", 200<<10)}}
	if resp, _ := c.post(big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
	// A forged session cookie.
	for _, forged := range []string{"../../etc", "a.b.>", strings.Repeat("z", 10240), "aaaaaaaaaaaaaaaaaaaaaaaaa*"} {
		req, _ := http.NewRequest("POST", a.URL+"/", strings.NewReader("_seq=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: node.DefaultCookie, Value: url.QueryEscape(forged)})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("forged cookie %.20q: %d", forged, resp.StatusCode)
		}
	}
	// A cookie for a session that does not exist, past its first page.
	other := newClient(t, a.URL)
	other.get()
	if resp, _ := other.postAt(5, "x", modeltest.Answers("vehicle", 1, 0)); resp.StatusCode != http.StatusGone {
		t.Errorf("unknown session: %d", resp.StatusCode)
	}
	// The session itself carries on.
	c.answer(1, 0)
}

func TestBrokerStoppedMidSession(t *testing.T) {
	srv, a := setup(t)
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0)
	before := c.page
	srv.Stop()
	resp, _ := c.post(modeltest.Answers("vehicle", 1, 0))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with NATS down: %d", resp.StatusCode)
	}
	srv.Start()
	// Once the node reconnects and renews its lease it answers again, from
	// the state the stream holds: the refused answer was not applied.
	brokertest.WaitFor(t, 30*time.Second, "the node to serve again", func() bool {
		resp, _ := c.get()
		return resp.StatusCode == http.StatusOK
	})
	if c.page.Seq != before.Seq || c.page.Step != "vehicle" {
		t.Fatalf("after the outage: %s at %d, want vehicle at %d", c.page.Step, c.page.Seq, before.Seq)
	}
	c.answer(1, 0)
	st := latest(t, srv, c)
	if st.Seq != c.page.Seq {
		t.Fatalf("stream holds seq %d, the page shows %d", st.Seq, c.page.Seq)
	}
}

// latest reads the client's session from the stream.
func latest(t *testing.T, srv *brokertest.Server, c *client) snapshot.Stored {
	t.Helper()
	js := srv.JetStream(t)
	stream, err := js.Stream(context.Background(), broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	st, err := snapshot.Latest(context.Background(), stream, broker.Subjects{}, nil, c.page.Session, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPromotedBackupContinuesTheSession(t *testing.T) {
	for _, cold := range []bool{false, true} {
		t.Run(fmt.Sprintf("cold=%v", cold), func(t *testing.T) {
			srv, a := setup(t)
			b := start(t, srv, "b", node.RoleBackup, func(c *node.Config) { c.Cold = cold })
			c := newClient(t, a.URL)
			c.get()
			driver := 0
			for c.page.Step != "payment/method" {
				if c.page.Step == "drivers/driver/more" {
					driver++
				}
				c.answer(2, driver)
			}
			// The backup serves nothing before it is promoted.
			if resp, _ := newClient(t, b.URL).get(); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("backup answered %d", resp.StatusCode)
			}
			a.Stop() // hands over: b claims at once
			brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool {
				st, ok := b.Status()
				return ok && st.Role == "primary" && st.Ready
			})
			c.base = b.URL
			if resp, p := c.get(); resp.StatusCode != 200 || p.Step != "payment/method" {
				t.Fatalf("on b: %d %s", resp.StatusCode, p.Step)
			}
			for !c.page.Finished {
				c.answer(2, driver)
			}
			if !strings.Contains(string(c.page.Vals), "Driver 1") || !strings.Contains(string(c.page.Vals), `"last4":"1111"`) {
				t.Fatalf("values after failover: %s", c.page.Vals)
			}
			st := latest(t, srv, c)
			if st.Epoch != 2 || st.Node != "b" {
				t.Fatalf("stream's newest snapshot: epoch %d node %s", st.Epoch, st.Node)
			}
		})
	}
}

// TestLogsCarryNoAnswers: whatever happens to a session (answers, invalid
// input, stale submissions), nothing a user typed appears in the logs.
func TestLogsCarryNoAnswers(t *testing.T) {
	srv := brokertest.Start(t)
	var logs strings.Builder
	var mu sync.Mutex
	a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := newClient(t, a.URL)
	c.get()
	secret := url.Values{"name": {"Zebedee Quux"}, "email": {"zq@secret.example"}, "born": {"2020-02-02"}}
	c.post(secret) // invalid: too young
	c.answer(1, 0)
	c.postAt(0, c.page.CSRF, secret) // stale
	for !c.page.Finished {
		c.answer(1, 1)
	}
	mu.Lock()
	defer mu.Unlock()
	text := logs.String()
	if !strings.Contains(text, string(c.page.Session)) {
		t.Fatal("the logs never name the session: the check below would prove nothing")
	}
	for _, typed := range []string{"Zebedee", "zq@secret", "2020-02-02", "Ada Lovelace", "ada@example.com", "4111111111111111", "A. Lovelace"} {
		if strings.Contains(text, typed) {
			t.Errorf("the logs carry %q", typed)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestStepTemplateOverride: a step that names a template is rendered by
// the application's own template, with the page.
func TestStepTemplateOverride(t *testing.T) {
	srv := brokertest.Start(t)
	tmpl := template.Must(template.New("applicant-page").Parse(`<h1 id="own">{{.Page.StepTitle}} ({{len .Page.Fields}} fields, seq {{.Page.Seq}})</h1>`))
	reg := model.NewRegistry().MustRegister(model.App("custom", 1,
		model.Interactive("hello", model.Text("name").Required()).Title("Hello there").Template("applicant-page")))
	cfg := node.Config{Node: "a", Role: node.RolePrimary, Listen: "127.0.0.1:0", NATS: srv.ClientConfig(t),
		Templates: tmpl, Logger: brokertest.Logger(t)}
	n, err := node.New(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := n.Listen()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var body string
	brokertest.WaitFor(t, 20*time.Second, "the custom page", func() bool {
		resp, err := http.Get("http://" + addr.String() + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(body, `<h1 id="own">Hello there (1 fields, seq 0)</h1>`) {
		t.Fatalf("page: %s", body)
	}
}
