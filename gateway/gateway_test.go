package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/gateway"
	"understudy/internal/syncbuf"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/node/nodetest"
)

// logs collects the log lines of every component of a test.
type logs struct{ syncbuf.Buffer }

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startNode(t *testing.T, srv *brokertest.Server, name string, role node.Role, log *slog.Logger) *nodetest.Running {
	t.Helper()
	cfg := nodetest.Config(t, srv.ClientConfig(t), name, role)
	cfg.Logger = log
	return nodetest.Start(t, cfg, modeltest.Registry(), modeltest.Resolver())
}

type browser struct {
	t    *testing.T
	base string
	http *http.Client
	page struct {
		model.Page
		CSRF string `json:"csrf"`
	}
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) do(req *http.Request) int {
	b.t.Helper()
	req.Header.Set("Accept", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &b.page); err != nil {
			b.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func (b *browser) get() int {
	req, _ := http.NewRequest("GET", b.base+"/", nil)
	return b.do(req)
}

func (b *browser) post(vals url.Values, seq uint64, csrf string) int {
	b.t.Helper()
	form := url.Values{}
	for k, v := range vals {
		form[k] = v
	}
	form.Set("_seq", strconv.FormatUint(seq, 10))
	form.Set("_csrf", csrf)
	req, _ := http.NewRequest("POST", b.base+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// TestLogsCarryNoAnswers: a session goes through the gateway with answers
// valid and invalid, stale and forged submissions, a body too large for
// the gateway, a primary handing over and the gateway carrying the session
// to the new one: the gateway's, the nodes' and NATS's logs name the
// session and never carry anything the user typed.
func TestLogsCarryNoAnswers(t *testing.T) {
	all := &logs{}
	srv := brokertest.Start(t, func(c *broker.EmbeddedConfig) { c.Logger = all.logger() })
	a := startNode(t, srv, "a", node.RolePrimary, all.logger().With("who", "a"))
	b := startNode(t, srv, "b", node.RoleBackup, all.logger().With("who", "b"))

	nc := srv.Connect(t)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(nc, kv, gateway.Config{Lease: 300 * time.Millisecond, MaxBody: 8 << 10, Logger: all.logger().With("who", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	front := httptest.NewServer(gw)
	defer front.Close()

	c := newBrowser(t, front.URL)
	c.get()
	secret := url.Values{"name": {"Zebedee Quux"}, "email": {"zq@secret.example"}, "born": {"2020-02-02"},
		"street": {"7 Hidden Lane"}, "city": {"Nowhereville"}, "postcode": {"ZZ9 9ZZ"}, "phone": {"+44 7700 900123"}}
	if code := c.post(secret, 0, c.page.CSRF); code != http.StatusUnprocessableEntity {
		t.Fatalf("too young: %d", code)
	}
	if code := c.post(modeltest.Answers("applicant", 1, 0), 0, c.page.CSRF); code != http.StatusOK {
		t.Fatalf("applicant: %d", code)
	}
	first := c.page
	if code := c.post(secret, 0, first.CSRF); code != http.StatusOK { // stale: not applied
		t.Fatalf("stale: %d", code)
	}
	if code := c.post(url.Values{"registration": {"SECRET REG 99"}}, first.Seq, "forged"); code != http.StatusForbidden {
		t.Fatalf("forged token: %d", code)
	}
	big := url.Values{"registration": {"HUGE-" + strings.Repeat("SECRETPAD", 2000)}}
	if code := c.post(big, first.Seq, first.CSRF); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("too large for the gateway: %d", code)
	}
	vehicle := modeltest.Answers("vehicle", 1, 0)
	vehicle.Set("registration", "SECRG42")
	if code := c.post(vehicle, first.Seq, first.CSRF); code != http.StatusOK {
		t.Fatalf("vehicle: %d", code)
	}
	// The primary hands over; the gateway carries the session to b.
	a.Stop()
	who := modeltest.Answers("drivers/driver/who", 1, 0)
	who.Set("name", "Quentin Secretdriver")
	who.Set("licence", "SECRETLIC123")
	if code := c.post(who, c.page.Seq, c.page.CSRF); code != http.StatusOK {
		t.Fatalf("after the handover: %d", code)
	}
	if st, _ := b.Status(); st.Role != "primary" {
		t.Fatalf("b is %s", st.Role)
	}

	text := all.String()
	if !strings.Contains(text, string(c.page.Session)) {
		t.Fatal("the logs never name the session: the check below would prove nothing")
	}
	for _, typed := range []string{"Zebedee", "zq@secret", "2020-02-02", "Hidden Lane", "Nowhereville", "ZZ9", "7700 900123",
		"Ada Lovelace", "ada@example.com", "SECRET REG", "SECRG42", "SECRETPAD", "Secretdriver", "SECRETLIC", "Marylebone"} {
		if strings.Contains(text, typed) {
			t.Errorf("the logs carry %q", typed)
		}
	}
}

// TestBusyPrimaryIsRetried: a primary at its bound of requests in flight
// answers 503 busy; the gateway holds the request and sends it again to
// the same owner once a place is free, and signals nothing: the client
// gets its answer, and the group keeps its owner and epoch.
func TestBusyPrimaryIsRetried(t *testing.T) {
	srv := brokertest.Start(t)
	var armed atomic.Bool
	hold, release := make(chan struct{}), make(chan struct{})
	cfg := nodetest.Config(t, srv.ClientConfig(t), "a", node.RolePrimary)
	cfg.MaxInFlight, cfg.AdmissionWait = 1, 5*time.Millisecond
	cfg.Fault = func(point string) {
		if point == "before-publish" && armed.CompareAndSwap(true, false) {
			close(hold)
			<-release
		}
	}
	a := nodetest.Start(t, cfg, modeltest.Registry(), modeltest.Resolver())
	startNode(t, srv, "b", node.RoleBackup, slog.New(slog.DiscardHandler))

	nc := srv.Connect(t)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(nc, kv, gateway.Config{Lease: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	front := httptest.NewServer(gw)
	defer front.Close()

	first, second := newBrowser(t, front.URL), newBrowser(t, front.URL)
	first.get()
	second.get()
	before, _ := a.Status()
	armed.Store(true)
	done := make(chan int, 1)
	go func() { done <- first.post(modeltest.Answers(first.page.Step, 1, 0), first.page.Seq, first.page.CSRF) }()
	<-hold
	answered := make(chan int, 1)
	seq := second.page.Seq
	go func() { answered <- second.post(modeltest.Answers(second.page.Step, 1, 0), seq, second.page.CSRF) }()
	// The second is turned away busy, again and again, while the first
	// holds the only place.
	time.Sleep(200 * time.Millisecond)
	select {
	case code := <-answered:
		t.Fatalf("answered %d while the only place was held", code)
	default:
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the request in flight: %d", code)
	}
	if code := <-answered; code != http.StatusOK || second.page.Seq != seq+1 {
		t.Fatalf("the busy one, retried: %d at seq %d, want 200 at seq %d", code, second.page.Seq, seq+1)
	}
	after, _ := a.Status()
	if after.Role != "primary" || after.Epoch != before.Epoch {
		t.Fatalf("a busy primary lost the group: %+v, before %+v", after, before)
	}
}
