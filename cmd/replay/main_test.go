package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/cmd/replay/replaycmd"
	"understudy/demo"
	"understudy/entity"
	"understudy/group"
	"understudy/internal/syncbuf"
	"understudy/model"
	"understudy/node"
	"understudy/node/nodetest"
	"understudy/publisher"
	"understudy/snapshot"
)

// replay runs the command with args against srv and returns its output.
func replay(t *testing.T, srv *brokertest.Server, args ...string) (string, string, error) {
	t.Helper()
	return replayIn(t, srv, nil, args...)
}

func replayIn(t *testing.T, srv *brokertest.Server, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	if srv != nil {
		args = append(args, "-nats", srv.URL(), "-timeout", "20s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	err := runWith(ctx, args, stdin, &stdout, &stderr)
	if os.Getenv("REPLAY_DEBUG") != "" {
		t.Logf("$ replay %s\n%s%s(err %v)", strings.Join(args, " "), stdout.String(), stderr.String(), err)
	}
	return stdout.String(), stderr.String(), err
}

// ok runs the command and fails the test on error.
func ok(t *testing.T, srv *brokertest.Server, args ...string) string {
	t.Helper()
	out, errOut, err := replay(t, srv, args...)
	if err != nil {
		t.Fatalf("replay %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return v
}

// --- a primary node of the demo, driven over HTTP like a browser ---

type browser struct {
	t    *testing.T
	base string
	http *http.Client
	page struct {
		model.Page
		CSRF string `json:"csrf"`
	}
	n int // the customer whose answers it gives
}

func newBrowser(t *testing.T, base string, n int) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 20 * time.Second}, n: n}
	b.do(http.NewRequest("GET", base+"/", nil))
	return b
}

func (b *browser) do(req *http.Request, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &b.page); err != nil {
		b.t.Fatalf("%s: %s", err, body)
	}
}

// answer submits the demo's answers to the page shown.
func (b *browser) answer() {
	b.t.Helper()
	form := demo.Answers(b.page.Step, b.n)
	form.Set("_seq", strconv.FormatUint(b.page.Seq, 10))
	form.Set("_csrf", b.page.CSRF)
	req, err := http.NewRequest("POST", b.base+"/", strings.NewReader(form.Encode()))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	b.do(req, err)
}

func (b *browser) id() string { return string(b.page.Session) }

func startNode(t *testing.T, srv *brokertest.Server) string {
	t.Helper()
	return nodetest.Start(t, nodetest.Config(t, srv.ClientConfig(t), "a", node.RolePrimary), demo.Registry(), demo.Resolver()).URL
}

// TestAgainstANode runs every command against sessions a real primary
// serves: one waiting at the drivers page, one further on, one finished.
func TestAgainstANode(t *testing.T) {
	srv := brokertest.Start(t)
	base := startNode(t, srv)
	early, later, done := newBrowser(t, base, 1), newBrowser(t, base, 2), newBrowser(t, base, 0)
	for range 2 {
		early.answer() // applicant, vehicle: now at drivers/driver, seq 2
	}
	for range 4 {
		later.answer() // ... drivers, cover: now past the price
	}
	for i := 0; !done.page.Finished; i++ {
		if i > 20 {
			t.Fatal("the quote does not finish")
		}
		done.answer()
	}
	if early.page.Step != demo.StepDriver || early.page.Seq != 2 {
		t.Fatalf("early session at %s seq %d", early.page.Step, early.page.Seq)
	}

	t.Run("status", func(t *testing.T) {
		out := ok(t, srv, "status", "-wait", "400ms")
		contains(t, "status", out, "owner     a (http://", "epoch     1", "released  no", "UNDERSTUDY_SESSIONS: 3 session(s)", "primary (owner)")
		st := decodeJSON[struct {
			Exists  bool   `json:"exists"`
			Owner   string `json:"owner"`
			Epoch   uint64 `json:"epoch"`
			Claims  []snapshot.Claim
			Members []struct {
				Node, Role string
				Sessions   int
			} `json:"members"`
		}](t, ok(t, srv, "status", "-json", "-wait", "400ms"))
		if !st.Exists || st.Owner != "a" || st.Epoch != 1 || len(st.Claims) != 1 || len(st.Members) != 1 || st.Members[0].Role != "primary" {
			t.Errorf("status %+v", st)
		}
	})

	t.Run("list", func(t *testing.T) {
		out := ok(t, srv, "list")
		contains(t, "list", out, early.id(), later.id(), done.id(), "car-insurance@1", demo.StepDriver, later.page.Step, "(finished)", "3 session(s)")
		rows := decodeJSON[[]struct {
			Session, Step, App, Node string
			Seq                      uint64
			Finished                 bool
		}](t, ok(t, srv, "list", "-json", "-sort", "seq"))
		if len(rows) != 3 || rows[0].Session != done.id() || !rows[0].Finished || rows[2].Session != early.id() || rows[2].Step != demo.StepDriver || rows[2].Seq != 2 || rows[2].Node != "a" {
			t.Errorf("rows %+v", rows)
		}
		if _, _, err := replay(t, srv, "list", "-finished", "no", "-no-decode"); err == nil {
			t.Error("-finished with -no-decode accepted")
		}
		out = ok(t, srv, "list", "-finished", "no")
		if strings.Contains(out, done.id()) || !strings.Contains(out, early.id()) {
			t.Errorf("list -finished no:\n%s", out)
		}
		out = ok(t, srv, "list", "-no-decode", "-node", "a", "-since", "1h")
		contains(t, "list -no-decode", out, early.id(), "car-insurance@1,card@1,payment@1")
	})

	t.Run("history", func(t *testing.T) {
		out := ok(t, srv, "history", later.id())
		contains(t, "history", out, "4 messages", "interaction seqs 1-4", "valid")
		h := decodeJSON[struct {
			Messages []struct {
				Seq    uint64 `json:"seq"`
				State  string `json:"state"`
				Newest bool   `json:"newest_valid"`
				Node   string `json:"node"`
			} `json:"messages"`
		}](t, ok(t, srv, "history", later.id(), "-json"))
		if len(h.Messages) != 4 || h.Messages[0].Seq != 1 || !h.Messages[3].Newest || h.Messages[3].State != "valid" || h.Messages[0].Node != "a" {
			t.Errorf("history %+v", h)
		}
	})

	t.Run("show", func(t *testing.T) {
		out := ok(t, srv, "show", early.id())
		contains(t, "show", out, "Understudy-Epoch:", "Understudy-Prev:", "envelope  format 1, seq 2, epoch 1, node a",
			"waiting   at drivers/driver", "name: \"Alan Turing\"", "WAITING", "interactive vehicle done")
		js := decodeJSON[struct {
			Message struct{ Seq uint64 }
			State   struct {
				App     string
				Waiting string
				Values  map[string]any
				Steps   []struct{ Kind, Location string }
			}
		}](t, ok(t, srv, "show", early.id(), "-json"))
		if js.Message.Seq != 2 || js.State.App != demo.AppName || js.State.Waiting != demo.StepDriver || js.State.Values["applicant"] == nil || len(js.State.Steps) < 4 {
			t.Errorf("show -json %+v", js)
		}
		out = ok(t, srv, "show", early.id(), "-seq", "2", "-diag")
		contains(t, "show -diag", out, `"`+early.id()+`"`, "1001(", "48879(", "Understudy-Seq:")
		out = ok(t, srv, "show", "-diag", "-compact", early.id())
		if strings.Count(out[strings.Index(out, "envelope"):], "\n") > 3 {
			t.Errorf("compact diag spans lines:\n%s", out)
		}
	})

	t.Run("diff", func(t *testing.T) {
		out := ok(t, srv, "diff", later.id(), "1", "3")
		contains(t, "diff", out, "waiting  vehicle -> cover", "done #", "interactive vehicle", "+ #", "drivers/driver",
			"+ vehicle.car: vehicles/", "+ drivers.0.name: \"Grace Hopper\"")
		if strings.Contains(out, "applicant.name") {
			t.Errorf("unchanged value in diff:\n%s", out)
		}
		d := decodeJSON[struct {
			Params []struct{ Path, Op string }
			Steps  struct{ Added []struct{ Location string } }
		}](t, ok(t, srv, "diff", later.id(), "1", "2", "-json"))
		if len(d.Params) == 0 || d.Params[0].Op != "added" || len(d.Steps.Added) == 0 {
			t.Errorf("diff -json %+v", d)
		}
	})

	t.Run("preview", func(t *testing.T) {
		// The later session at seq 1: the vehicle page, with the answers so far.
		out := ok(t, srv, "preview", later.id(), "-seq", "1", "-mem")
		contains(t, "preview", out, "Preview of session "+later.id()+" at interaction 1", "Car insurance quote", "== Your car ==",
			"Your car *", "Registration number *", "(none chosen)  (one of 12)", "Answered so far:", "About you", "Full name: Grace Hopper",
			"Date of birth: 9 December 1990")
		html := filepath.Join(t.TempDir(), "page.html")
		ok(t, srv, "preview", later.id(), "-seq", "1", "-mem", "-html", html)
		b, err := os.ReadFile(html)
		if err != nil {
			t.Fatal(err)
		}
		contains(t, "preview -html", string(b), "<form", `<fieldset class="preview" disabled>`, "<h1>Your car</h1>", `<label for="f-car">Your car`, "Ford Fiesta", "<style>")
		// Through the nodes' database, as the local deployment has it.
		db := filepath.Join(t.TempDir(), "entities.db")
		store, err := entity.Open(context.Background(), entity.Config{DSN: db, Seed: demo.Entities()})
		if err != nil {
			t.Fatal(err)
		}
		store.Close()
		out = ok(t, srv, "preview", done.id(), "-db", db)
		// What the user saw: labels, and choices by their option's label.
		contains(t, "preview finished", out, "Your car is insured", "Policy number: UQ-", "What happens next:",
			"Full name: Ada Lovelace", "Your car: BMW 320d M Sport (2020)", "What the car is used for: Social and commuting",
			"Date of birth: 10 December 1985")
		for _, key := range []string{"commute", "1985-12-10", "Another:", "Offer extras"} {
			if strings.Contains(out, key) {
				t.Errorf("preview finished shows %q:\n%s", key, out)
			}
		}
		ok(t, srv, "preview", done.id(), "-db", db, "-html", html)
		if b, err = os.ReadFile(html); err != nil {
			t.Fatal(err)
		}
		contains(t, "preview -html finished", string(b), `<div class="summary" id="summary">`, "<h3>About you</h3>", "<dd>Ada Lovelace</dd>",
			"<dd>BMW 320d M Sport (2020)</dd>", "Policy number")
		if _, _, err := replay(t, srv, "preview", done.id(), "-db", filepath.Join(t.TempDir(), "none.db")); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("preview with a missing database: %v", err)
		}
	})

	t.Run("tail", func(t *testing.T) {
		var out syncbuf.Buffer
		before := consumers(t, srv)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 2)
		go func() {
			errc <- runWith(ctx, []string{"tail", early.id(), "-count", "1", "-nats", srv.URL()}, nil, &out, io.Discard)
		}()
		var all syncbuf.Buffer
		go func() { errc <- runWith(ctx, []string{"tail", "-json", "-nats", srv.URL()}, nil, &all, io.Discard) }()
		brokertest.WaitFor(t, 15*time.Second, "both tails to follow the stream", func() bool { return consumers(t, srv) >= before+2 })
		early.answer() // a new snapshot: seq 3
		brokertest.WaitFor(t, 15*time.Second, "tail to print the new snapshot", func() bool {
			return strings.Contains(out.String(), early.id()) && strings.Contains(all.String(), early.id())
		})
		if err := <-errc; err != nil { // -count 1
			t.Fatal(err)
		}
		if os.Getenv("REPLAY_DEBUG") != "" {
			t.Logf("tail:\n%s\ntail -json:\n%s", out.String(), all.String())
		}
		contains(t, "tail", out.String(), "seq 3", "epoch 1", " a ", "cover")
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("tail after cancel: %v", err)
		}
		line, _, _ := strings.Cut(all.String(), "\n")
		tl := decodeJSON[struct{ Session, Step, State string }](t, line)
		if tl.Session != early.id() || tl.State != "valid" || tl.Step == "" {
			t.Errorf("tail -json %s", line)
		}
	})

	t.Run("export and import", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "session.jsonl")
		out := ok(t, srv, "export", later.id(), file)
		contains(t, "export", out, "exported 4 messages")
		other := brokertest.Start(t)
		out = ok(t, other, "import", file)
		contains(t, "import", out, "imported 4 messages", "stream created", "stream seqs 1-4")
		a, b := messages(t, srv, later.id()), messages(t, other, later.id())
		if len(a) != 4 || len(b) != 4 {
			t.Fatalf("%d and %d messages", len(a), len(b))
		}
		for i := range a {
			if a[i].Subject != b[i].Subject || !bytes.Equal(a[i].Data, b[i].Data) || !sameHeaders(a[i].Header, b[i].Header) {
				t.Errorf("message %d differs:\n%+v\n%+v", i, a[i], b[i])
			}
		}
		// The imported session reads back the same, updated when it was.
		contains(t, "show imported", ok(t, other, "show", later.id()), "waiting   at "+later.page.Step)
		type row struct {
			Session         string
			Updated, Stored time.Time
		}
		var src row
		for _, r := range decodeJSON[[]row](t, ok(t, srv, "list", "-json")) {
			if r.Session == later.id() {
				src = r
			}
		}
		for _, args := range [][]string{{"list", "-json"}, {"list", "-json", "-no-decode"}} {
			imported := decodeJSON[[]row](t, ok(t, other, args...))
			if len(imported) != 1 || !imported[0].Updated.Equal(src.Updated) || src.Updated.IsZero() || !imported[0].Stored.After(src.Stored) {
				t.Errorf("%v after the import: %+v; in the source %+v", args, imported, src)
			}
		}
		if _, _, err := replay(t, other, "import", file); err == nil || !strings.Contains(err.Error(), "already in stream") {
			t.Errorf("second import: %v", err)
		}
		// The header line says what it is.
		f, _ := os.Open(file)
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan()
		contains(t, "export header", sc.Text(), `"format":"understudy-replay-export"`, `"version":1`, `"stream":"UNDERSTUDY_SESSIONS"`)
	})

	t.Run("diag", func(t *testing.T) {
		raw := messages(t, srv, early.id())[0]
		file := filepath.Join(t.TempDir(), "snap.cbor")
		if err := os.WriteFile(file, raw.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		out := ok(t, nil, "diag", file)
		contains(t, "diag", out, "[\n  1,\n  \""+early.id()+"\",", "1001({")
		stdout, _, err := replayIn(t, nil, bytes.NewReader(raw.Data), "diag", "-compact")
		if err != nil || strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stdout, "[1, \""+early.id()) {
			t.Errorf("diag from stdin: %v\n%s", err, stdout)
		}
		stdout, _, err = replayIn(t, nil, strings.NewReader("\xff\x00garbage"), "diag")
		if !errors.Is(err, replaycmd.ErrUndecodable) || !strings.Contains(stdout, "hex:") {
			t.Errorf("diag of garbage: %v\n%s", err, stdout)
		}
	})
}

// consumers counts the session stream's consumers.
func consumers(t *testing.T, srv *brokertest.Server) int {
	s, err := srv.JetStream(t).Stream(context.Background(), "UNDERSTUDY_SESSIONS")
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Consumers
}

// messages reads a session's messages from srv's stream.
func messages(t *testing.T, srv *brokertest.Server, id string) []*jetstream.RawStreamMsg {
	t.Helper()
	js := srv.JetStream(t)
	s, err := js.Stream(context.Background(), "UNDERSTUDY_SESSIONS")
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject("understudy.sess."+id))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// sameHeaders compares headers but for the publish expectations, which
// were about each stream's own sequences.
func sameHeaders(a, b nats.Header) bool {
	strip := func(h nats.Header) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			if !strings.HasPrefix(k, "Nats-Expected-") {
				out[k] = strings.Join(v, "\x00")
			}
		}
		return out
	}
	x, y := strip(a), strip(b)
	if len(x) != len(y) || len(x) == 0 {
		return false
	}
	for k, v := range x {
		if y[k] != v {
			return false
		}
	}
	return true
}

// --- sessions published directly, the way a primary does ---

type fixture struct {
	srv    *brokertest.Server
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	eng    *model.Engine
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := brokertest.Start(t)
	js := srv.JetStream(t, brokertest.NoReconnectBuffer())
	ctx := context.Background()
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := broker.EnsureBucket(ctx, js, broker.BucketConfig{Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, js: js, stream: stream, kv: kv, eng: model.NewEngine(demo.Registry(), demo.Resolver())}
}

func (f *fixture) publisher(t *testing.T, node string, fence snapshot.Fence) *publisher.Publisher {
	p := publisher.New(f.js, f.stream, publisher.Config{Node: node, Fence: fence, Logger: brokertest.Logger(t)})
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// drive returns customer n's session after answering pages, stamped as
// written by node at epoch.
func (f *fixture) drive(t *testing.T, id model.SessionID, n, pages int, node string, epoch uint64) *model.Session {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	run, err := f.eng.Start(ctx, model.Begin{App: demo.AppName, Session: id, Now: now, Node: node, Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	for range pages {
		pg, err := f.eng.Page(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
		if run, err = f.eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: demo.Answers(pg.Step, n), Now: now, Node: node, Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	return run.Session()
}

func sessionID(n byte) model.SessionID {
	var b [16]byte
	b[0], b[15] = n, 0xaa
	return model.NewSessionID(b)
}

func (f *fixture) setGroup(t *testing.T, e group.Entry) {
	t.Helper()
	b, _ := json.Marshal(e)
	if _, err := f.kv.Put(context.Background(), group.DefaultGroup, b); err != nil {
		t.Fatal(err)
	}
}

// TestFencedSnapshots: an old primary keeps publishing after a new epoch
// claimed the group; history marks its snapshot fenced, show and preview
// skip it, diff compares it with the new owner's.
func TestFencedSnapshots(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := sessionID(1)
	old := f.publisher(t, "n1", nil)
	first, err := old.Publish(ctx, f.drive(t, id, 0, 1, "n1", 1))
	if err != nil {
		t.Fatal(err)
	}
	claims := snapshot.Claims{{Epoch: 1}, {Epoch: 2, Fence: first.StreamSeq}}
	f.setGroup(t, group.Entry{Epoch: 2, Owner: "n2", Address: "http://127.0.0.1:1", Fence: first.StreamSeq, Claims: claims, Renewed: time.Now()})
	// n1 has not noticed: it answers the vehicle page with customer 0's car.
	fenced, err := old.Publish(ctx, f.drive(t, id, 0, 2, "n1", 1))
	if err != nil {
		t.Fatal(err)
	}
	// n2 took over at the first snapshot; the user answers with another car.
	taker := f.publisher(t, "n2", claims)
	taker.Track(id, first.StreamSeq)
	s := f.drive(t, id, 0, 1, "n2", 2)
	run, err := f.eng.Materialize(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	form := demo.Answers(demo.StepVehicle, 0)
	form.Set("car", "volvo-xc40")
	run, err = f.eng.Submit(ctx, run, model.Input{Seq: 1, Values: form, Now: s.Updated.Add(time.Minute), Node: "n2", Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	valid, err := taker.Publish(ctx, run.Session())
	if err != nil {
		t.Fatal(err)
	}
	if valid.Over != fenced.StreamSeq {
		t.Fatalf("published over %d, want the fenced %d", valid.Over, fenced.StreamSeq)
	}

	out := ok(t, f.srv, "history", string(id))
	contains(t, "history", out, "fenced", "after epoch 2 claimed the group at stream seq "+strconv.FormatUint(first.StreamSeq, 10))
	h := decodeJSON[struct {
		Messages []struct {
			StreamSeq uint64 `json:"stream_seq"`
			Fenced    bool
			Newest    bool `json:"newest_valid"`
			Node      string
		}
	}](t, ok(t, f.srv, "history", string(id), "-json"))
	if len(h.Messages) != 3 || h.Messages[0].Fenced || !h.Messages[1].Fenced || h.Messages[2].Fenced || !h.Messages[2].Newest || h.Messages[1].Node != "n1" {
		t.Errorf("history %+v", h)
	}
	// show -seq 2 picks the valid snapshot at seq 2, not the fenced one.
	out = ok(t, f.srv, "show", string(id), "-seq", "2")
	contains(t, "show -seq 2", out, "node n2", "volvo-xc40")
	out = ok(t, f.srv, "show", string(id), "-stream-seq", strconv.FormatUint(fenced.StreamSeq, 10))
	contains(t, "show fenced", out, "fenced", "no reader uses it", "bmw-320d")
	out = ok(t, f.srv, "diff", string(id), "-stream", strconv.FormatUint(fenced.StreamSeq, 10), strconv.FormatUint(valid.StreamSeq, 10))
	contains(t, "diff", out, "~ vehicle.car: vehicles/bmw-320d@1 -> vehicles/volvo-xc40@1", "is fenced")
	out = ok(t, f.srv, "list")
	contains(t, "list", out, string(id), "n2", demo.StepDriver)
	out = ok(t, f.srv, "status", "-wait", "50ms")
	contains(t, "status", out, "owner     n2", "epoch     2", "claims: epoch 1 from stream seq 0, epoch 2 from stream seq", "members: no heartbeat")
}

// TestErrors: what the tool says about sessions it cannot show.
func TestErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.publisher(t, "n1", nil)

	// A session with more snapshots than the stream keeps.
	long := sessionID(2)
	s := f.drive(t, long, 3, 1, "n1", 1)
	for i := range 20 {
		c := s.Clone()
		c.Seq, c.Updated = uint64(i+1), s.Updated.Add(time.Duration(i)*time.Second)
		if _, err := p.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// A message with valid headers whose payload is not a snapshot.
	bad := sessionID(3)
	junk := []byte{0xa1, 0x61, 0x61, 0x01} // {"a": 1}
	msg := &nats.Msg{Subject: "understudy.sess." + string(bad), Data: junk,
		Header: snapshot.Meta{Session: bad, Epoch: 1, Seq: 1, Node: "n1", Format: cbor.FormatVersion}.Header(junk)}
	if _, err := f.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want error
		text string
	}{
		{[]string{"show", string(sessionID(9))}, replaycmd.ErrNoSession, "no such session"},
		{[]string{"preview", string(sessionID(9)), "-mem"}, replaycmd.ErrNoSession, string(sessionID(9))},
		{[]string{"show", string(long), "-seq", "2"}, replaycmd.ErrDiscarded, "older ones discarded"},
		{[]string{"preview", string(long), "-seq", "1", "-mem"}, replaycmd.ErrDiscarded, "seq 1"},
		{[]string{"show", string(long), "-stream-seq", "1"}, replaycmd.ErrDiscarded, "stream seq 1"},
		{[]string{"show", string(long), "-seq", "99"}, replaycmd.ErrNoSnapshot, "interaction seqs 5-20"},
		{[]string{"diff", string(long), "3", "20"}, replaycmd.ErrDiscarded, "seq 3"},
		{[]string{"show", "not-a-session"}, model.ErrBadSessionID, "length 13"},
		{[]string{"history", "understudy.sess.>"}, model.ErrBadSessionID, "bad session id"},
		{[]string{"export", strings.ToUpper(string(long)), "-"}, model.ErrBadSessionID, "character"},
		{[]string{"show", string(bad)}, replaycmd.ErrUndecodable, "bad snapshot message"},
		{[]string{"preview", string(bad), "-mem"}, replaycmd.ErrUndecodable, "-stream-seq 21 shows"},
		{[]string{"show", string(long), "-seq", "x"}, replaycmd.ErrUsage, ""},
		{[]string{"frobnicate"}, replaycmd.ErrUsage, ""},
		{[]string{"show"}, replaycmd.ErrUsage, ""},
		{[]string{"diff", string(long), "5"}, replaycmd.ErrUsage, ""},
		{[]string{"list", string(long)}, replaycmd.ErrUsage, ""},
	} {
		out, _, err := replay(t, f.srv, c.args...)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: got %v, want %v saying %q", strings.Join(c.args, " "), err, c.want, c.text)
		}
		if c.args[0] == "show" && c.want == replaycmd.ErrUndecodable {
			// The headers and the raw form are still shown.
			contains(t, "show of a bad snapshot", out, "Understudy-Epoch:", "Understudy-Prev:", `{"a": 1}`, "4 bytes, bad")
		}
	}
	if code := replaycmd.ExitCode(replaycmd.ErrNoSession, "replay", io.Discard); code != 1 {
		t.Errorf("exit code %d", code)
	}
	if _, _, err := replayIn(t, nil, nil, "help", "show"); err != nil {
		t.Errorf("help: %v", err)
	}
	// Flags fall back to their environment variables, as in every command.
	t.Setenv("UNDERSTUDY_NATS", f.srv.URL())
	t.Setenv("UNDERSTUDY_JSON", "true")
	out, _, err := replayIn(t, nil, nil, "history", string(long))
	if err != nil || !strings.HasPrefix(out, "{") {
		t.Errorf("history from the environment: %v\n%s", err, out)
	}
	os.Unsetenv("UNDERSTUDY_JSON")

	// The long session still shows what it keeps, and list marks the bad one.
	contains(t, "history", ok(t, f.srv, "history", string(long)), "16 messages", "older ones discarded")
	out = ok(t, f.srv, "list", "-ended")
	contains(t, "list", out, string(long), string(bad), "(bad: ")
	// A tombstone ends a session: listed with -ended only.
	if _, err := p.End(ctx, long, 1, 21); err != nil {
		t.Fatal(err)
	}
	if out := ok(t, f.srv, "list"); strings.Contains(out, string(long)) {
		t.Errorf("an ended session listed without -ended:\n%s", out)
	}
	contains(t, "list -ended", ok(t, f.srv, "list", "-ended"), "(ended)")
	contains(t, "show ended", ok(t, f.srv, "show", string(long)), "newer message at stream seq", "is ended")
}

// TestErase: replay erase asks the primary to erase a live session; with
// no primary it erases from the stream itself; either way only a
// tombstone is left, other sessions keep theirs, and a sealed session
// needs -key.
func TestErase(t *testing.T) {
	t.Run("primary", func(t *testing.T) {
		srv := brokertest.Start(t)
		base := startNode(t, srv)
		gone, kept := newBrowser(t, base, 1), newBrowser(t, base, 2)
		gone.answer()
		gone.answer()
		kept.answer()
		out := ok(t, srv, "erase", gone.id())
		contains(t, "erase", out, "erased by primary a", "it was live", "1 message(s) of it: its tombstone")
		h := ok(t, srv, "history", gone.id())
		contains(t, "history after erase", h, "1 messages", "ended")
		kept.answer()
		// Erasing again does no harm (an operator retrying after a
		// timeout); a session that never was is an error.
		contains(t, "erase again", ok(t, srv, "erase", gone.id()), "1 message(s) of it")
		if _, _, err := replay(t, srv, "erase", string(sessionID(77))); !errors.Is(err, replaycmd.ErrNoSession) {
			t.Errorf("erasing a session that never was: %v", err)
		}
	})
	t.Run("no primary", func(t *testing.T) {
		f := newFixture(t)
		p := f.publisher(t, "n1", nil)
		id, other := sessionID(4), sessionID(5)
		for _, s := range []model.SessionID{id, other} {
			for pages := 1; pages <= 3; pages++ {
				if _, err := p.Publish(context.Background(), f.drive(t, s, 1, pages, "n1", 1)); err != nil {
					t.Fatal(err)
				}
			}
		}
		res := decodeJSON[struct {
			By        string `json:"by"`
			Tombstone uint64 `json:"tombstone"`
			Left      int    `json:"left"`
		}](t, ok(t, f.srv, "erase", string(id), "-json"))
		if res.By != "replay" || res.Tombstone == 0 || res.Left != 1 {
			t.Fatalf("erase: %+v", res)
		}
		contains(t, "history of the other session", ok(t, f.srv, "history", string(other)), "3 messages")
	})
	t.Run("sealed", func(t *testing.T) {
		f := newFixture(t)
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "keys")
		if err := os.WriteFile(keyFile, []byte("k1 "+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := snapshot.LoadKeyring(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		p := publisher.New(f.js, f.stream, publisher.Config{Node: "n1", Sealer: keys, Logger: brokertest.Logger(t)})
		id := sessionID(6)
		if _, err := p.Publish(context.Background(), f.drive(t, id, 1, 2, "n1", 1)); err != nil {
			t.Fatal(err)
		}
		// Without the key, the tool cannot read it, and will not erase it
		// with a tombstone the nodes would refuse.
		if _, _, err := replay(t, f.srv, "show", string(id)); !errors.Is(err, replaycmd.ErrUndecodable) {
			t.Errorf("show without -key: %v", err)
		}
		if _, _, err := replay(t, f.srv, "erase", string(id)); err == nil || !strings.Contains(err.Error(), "give -key") {
			t.Errorf("erase without -key: %v", err)
		}
		out := ok(t, f.srv, "show", string(id), "-key", keyFile)
		contains(t, "show -key", out, string(id), "sealed with key k1, valid", "Alan Turing")
		ok(t, f.srv, "erase", string(id), "-key", keyFile)
		stream, _ := f.js.Stream(context.Background(), broker.Subjects{}.StreamName())
		st, err := snapshot.Latest(context.Background(), stream, broker.Subjects{}, keys, id, nil)
		if err != nil || !st.Tombstone || st.Key != "k1" {
			t.Fatalf("after erase: %+v %v", st.Meta, err)
		}
	})
}
