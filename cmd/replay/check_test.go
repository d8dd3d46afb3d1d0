package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
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
	"understudy/internal/seed"
	"understudy/model"
	"understudy/node"
	"understudy/node/nodetest"
	"understudy/snapshot"
)

// checkOut is check's -json output as the tests read it.
type checkOut struct {
	Sessions int          `json:"sessions"`
	AsIs     int          `json:"as_is"`
	Migrate  int          `json:"migrate"`
	Fail     int          `json:"fail"`
	Versions []versionOut `json:"versions"`
}

type versionOut struct {
	App      string         `json:"app"`
	Sessions int            `json:"sessions"`
	AsIs     int            `json:"as_is"`
	Migrate  int            `json:"migrate"`
	Fail     int            `json:"fail"`
	Finished int            `json:"finished"`
	To       map[string]int `json:"migrate_to"`
	Failures []struct {
		Kind         string `json:"kind"`
		Count        int    `json:"count"`
		FirstSession string `json:"first_session"`
		FirstError   string `json:"first_error"`
	} `json:"failures"`
	Failed []string `json:"failed_sessions"`
}

func (c checkOut) version(app string) versionOut {
	for _, v := range c.Versions {
		if v.App == app {
			return v
		}
	}
	return versionOut{}
}

// quote drives customer n's quote on a release's engine, started at
// version, through pages pages (-1: to the end), as a node would.
func quote(t *testing.T, reg *model.Registry, id model.SessionID, n, version, pages int) *model.Session {
	t.Helper()
	eng := model.NewEngine(reg, demo.Resolver())
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	run, err := eng.Start(t.Context(), model.Begin{App: demo.AppName, Version: version, Session: id, Now: now, Node: "n1", Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; pages < 0 || i < pages; i++ {
		pg, err := eng.Page(t.Context(), run)
		if err != nil {
			t.Fatal(err)
		}
		if pg.Finished {
			break
		}
		vals := demo.Answers(pg.Step, n)
		first, last := demo.SplitName(vals.Get("name"))
		vals.Set("first", first)
		vals.Set("last", last)
		if run, err = eng.Submit(t.Context(), run, model.Input{Seq: run.Seq(), Values: vals, Now: now, Node: "n1", Epoch: 1}); err != nil {
			t.Fatalf("page %s: %v", pg.Step, err)
		}
	}
	return run.Session()
}

// TestCheck: the preflight against a real NATS holding sessions on both
// versions of the quote, finished and not, a message that is no snapshot
// and a session of an application no build knows. With each registry it
// reports exactly what would run as it is, migrate, or fail, and fails
// (exit status 1) when anything would.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.publisher(t, "n1", nil)
	v1, v2 := demo.Registry(), demo.RegistryV2()
	var onV1, onV2, finishedV1 []string
	for i := range 6 {
		id := sessionID(byte(10 + i))
		s := quote(t, v1, id, i, 0, 1+i)
		if _, err := p.Publish(ctx, s); err != nil {
			t.Fatal(err)
		}
		onV1 = append(onV1, string(id))
	}
	for i := range 2 {
		id := sessionID(byte(20 + i))
		if _, err := p.Publish(ctx, quote(t, v1, id, i, 0, -1)); err != nil {
			t.Fatal(err)
		}
		finishedV1 = append(finishedV1, string(id))
	}
	for i := range 3 {
		id := sessionID(byte(30 + i))
		if _, err := p.Publish(ctx, quote(t, v2, id, i, demo.AppVersion2, 2+i)); err != nil {
			t.Fatal(err)
		}
		onV2 = append(onV2, string(id))
	}
	// A message with valid headers whose payload is not a snapshot, and a
	// session of an application no build has.
	junkID := sessionID(40)
	junk := []byte{0xa1, 0x61, 0x61, 0x01}
	if _, err := f.js.PublishMsg(ctx, &nats.Msg{Subject: "understudy.sess." + string(junkID), Data: junk,
		Header: snapshot.Meta{Session: junkID, Epoch: 1, Seq: 1, Node: "n1", Format: cbor.FormatVersion}.Header(junk)}); err != nil {
		t.Fatal(err)
	}
	alien := quote(t, v1, sessionID(41), 0, 0, 1)
	alien.App = "pet-insurance"
	if _, err := p.Publish(ctx, alien); err != nil {
		t.Fatal(err)
	}
	// An ended session is no live session.
	ended := sessionID(42)
	if _, err := p.Publish(ctx, quote(t, v1, ended, 0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.End(ctx, ended, 1, 2); err != nil {
		t.Fatal(err)
	}
	strays := sorted([]string{string(junkID), string(sessionID(41))})

	t.Run("release 1", func(t *testing.T) {
		out, _, err := replay(t, f.srv, "check", "-json")
		if !errors.Is(err, replaycmd.ErrWouldFail) {
			t.Fatalf("err %v, want ErrWouldFail", err)
		}
		c := decodeJSON[checkOut](t, out)
		if c.Sessions != 13 || c.AsIs != 8 || c.Migrate != 0 || c.Fail != 5 {
			t.Fatalf("counts %+v", c)
		}
		v := c.version("car-insurance@2")
		if v.Fail != 3 || !slices.Equal(sorted(v.Failed), sorted(onV2)) || v.Failures[0].Kind != "unknown version" {
			t.Fatalf("version 2 with release 1: %+v, want %v failed", v, onV2)
		}
		if v := c.version("car-insurance@1"); v.AsIs != 8 || v.Finished != 2 {
			t.Fatalf("version 1 with release 1: %+v", v)
		}
	})

	t.Run("release 2", func(t *testing.T) {
		out, _, err := replay(t, f.srv, "-demo", "v2", "check", "-json")
		if !errors.Is(err, replaycmd.ErrWouldFail) {
			t.Fatalf("err %v, want ErrWouldFail (the strays)", err)
		}
		c := decodeJSON[checkOut](t, out)
		if c.Sessions != 13 || c.AsIs != 5 || c.Migrate != 6 || c.Fail != 2 {
			t.Fatalf("counts %+v", c)
		}
		if v := c.version("car-insurance@1"); v.Migrate != 6 || v.To["car-insurance@2"] != 6 || v.AsIs != 2 || v.Finished != 2 {
			t.Fatalf("version 1 with release 2: %+v", v)
		}
		if v := c.version("car-insurance@2"); v.AsIs != 3 || v.Fail != 0 {
			t.Fatalf("version 2 with release 2: %+v", v)
		}
		var failed []string
		for _, v := range c.Versions {
			failed = append(failed, v.Failed...)
		}
		if !slices.Equal(sorted(failed), strays) {
			t.Fatalf("failed %v, want the strays %v", failed, strays)
		}
		if v := c.version("pet-insurance@1"); v.Failures[0].Kind != "unknown application" || !strings.Contains(v.Failures[0].FirstError, string(sessionID(41))) {
			t.Fatalf("the alien: %+v", v)
		}
	})

	// Version 1 dropped without a migration: exactly the sessions on it
	// would fail, finished ones too (their summary could not be shown).
	t.Run("version 1 dropped", func(t *testing.T) {
		reg := model.NewRegistry().MustRegister(demo.QuoteV2(), demo.Payment(), demo.Card())
		c, text := checkWith(t, f.srv, reg)
		v := c.version("car-insurance@1")
		want := sorted(append(slices.Clone(onV1), finishedV1...))
		if v.Fail != 8 || !slices.Equal(sorted(v.Failed), want) || len(v.Failures) != 1 || v.Failures[0].Kind != "unknown version" {
			t.Fatalf("version 1 dropped: %+v", v)
		}
		if v := c.version("car-insurance@2"); v.AsIs != 3 {
			t.Fatalf("version 2: %+v", v)
		}
		for _, want := range []string{"car-insurance@1", "8 unknown version", "would fail", "3 as they are, 0 migrate, 10 fail"} {
			if !strings.Contains(text, want) {
				t.Errorf("text lacks %q:\n%s", want, text)
			}
		}
	})

	// A migration with a bug: the sessions it fails on are reported, with
	// the first error, and the others would migrate.
	t.Run("a migration that fails", func(t *testing.T) {
		reg := demo.Registry().MustMigrate(demo.Quote(), demo.QuoteV2(), func(in *model.Instance) error {
			for _, a := range in.Steps(demo.StepApplicant) {
				if name, _ := a.Params.Get("name"); strings.Contains(name.Str(), "Turing") {
					return fmt.Errorf("cannot split %q", name.Str())
				}
			}
			return demo.NameApart(in)
		})
		c, _ := checkWith(t, f.srv, reg)
		v := c.version("car-insurance@1")
		// Customers 1 (Alan Turing) among the six unfinished sessions.
		if v.Fail != 1 || v.Migrate != 5 || v.Failures[0].Kind != "migration" || !strings.Contains(v.Failures[0].FirstError, "Turing") ||
			v.Failed[0] != onV1[1] {
			t.Fatalf("the planted bug: %+v", v)
		}
	})
}

// checkWith runs check built with reg, as a team's own replay binary
// would, and returns its JSON and its text.
func checkWith(t *testing.T, srv *brokertest.Server, reg *model.Registry) (checkOut, string) {
	t.Helper()
	cfg := replaycmd.Config{Registry: reg}
	var outs [2]string
	for i, extra := range [][]string{{"-json"}, nil} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"check", "-nats", srv.URL()}, extra...)
		err := replaycmd.Main(t.Context(), cfg, args, strings.NewReader(""), &stdout, &stderr)
		if !errors.Is(err, replaycmd.ErrWouldFail) {
			t.Fatalf("err %v, want ErrWouldFail\n%s", err, stderr.String())
		}
		outs[i] = stdout.String()
	}
	return decodeJSON[checkOut](t, outs[0]), outs[1]
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

var checkSessions = flag.Int("check.sessions", 0, "TestCheckFigures: sessions to write and check (100000 for the figures)")
var checkNATS = flag.String("check.nats", "", "TestCheckFigures: write the sessions into this NATS (a running gateway's: nats://127.0.0.1:4222) instead of one of its own, and leave them there")

// TestCheckFigures writes -check.sessions demo sessions on version 1 (at
// every page, finished or not) into a stream, then times check with the
// second release over them. With -check.nats it writes into that NATS and
// leaves them there, for timing the command itself:
//
//	go run ./cmd/gateway -data /tmp/figures &
//	go test ./cmd/replay -run CheckFigures -check.sessions 100000 -check.nats nats://127.0.0.1:4222 -v
//	time go run ./cmd/replay -demo v2 check
func TestCheckFigures(t *testing.T) {
	if *checkSessions == 0 {
		t.Skip("-check.sessions not given")
	}
	url := *checkNATS
	if url == "" {
		url = brokertest.Start(t).URL()
	}
	ctx := t.Context()
	nc, err := broker.Connect(ctx, broker.Config{URL: url, Name: "check-figures", Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := seedQuotes(ctx, t, nc, *checkSessions); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err = runWith(ctx, []string{"-demo", "v2", "check", "-nats", url}, strings.NewReader(""), &stdout, &stderr)
	took := time.Since(start)
	t.Logf("check over %d sessions: %v (err %v)\n%s%s", *checkSessions, took.Round(time.Millisecond), err, stderr.String(), stdout.String())
	if err != nil {
		t.Fatal(err)
	}
}

// seedQuotes publishes n demo quotes of the first release into the
// session stream of the NATS nc is connected to (creating the stream if
// need be): copies, under fresh ids, of customers' quotes stopped at every
// page and finished, with the headers a primary writes.
func seedQuotes(ctx context.Context, t *testing.T, nc *nats.Conn, n int) error {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(seed.MaxPending))
	if err != nil {
		return err
	}
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(t)}); err != nil {
		return err
	}
	var templates []*model.Session
	for i := range 7 {
		for pages := 1; pages <= 10; pages++ {
			templates = append(templates, quote(t, demo.Registry(), sessionID(byte(i)), i, 0, pages))
		}
	}
	start := time.Now()
	randomID := func(int) model.SessionID {
		var b [16]byte
		rand.Read(b[:])
		return model.NewSessionID(b)
	}
	if _, err := seed.Sessions(ctx, js, broker.Subjects{}, templates, n, randomID, func(done int) { t.Logf("wrote %d of %d sessions", done, n) }); err != nil {
		return err
	}
	t.Logf("wrote %d sessions in %v", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// TestStatusShowsVersions: status shows what each member announces it can
// materialize, and what every live member can.
func TestStatusShowsVersions(t *testing.T) {
	srv := brokertest.Start(t)
	nodetest.Start(t, nodetest.Config(t, srv.ClientConfig(t), "new", node.RolePrimary), demo.RegistryV2(), demo.Resolver())
	nodetest.Start(t, nodetest.Config(t, srv.ClientConfig(t), "old", node.RoleBackup), demo.Registry(), demo.Resolver())
	var st struct {
		Members []struct {
			Node string   `json:"node"`
			Apps []string `json:"apps"`
		} `json:"members"`
	}
	brokertest.WaitFor(t, 10*time.Second, "both members in the status", func() bool {
		out, _, err := replay(t, srv, "status", "-json", "-wait", "300ms")
		if err != nil {
			return false
		}
		st.Members = nil
		if json.Unmarshal([]byte(out), &st) != nil || len(st.Members) != 2 {
			return false
		}
		return true
	})
	want := map[string][]string{"new": {"car-insurance@1", "car-insurance@2", "card@1", "payment@1"}, "old": {"car-insurance@1", "card@1", "payment@1"}}
	for _, m := range st.Members {
		if !slices.Equal(m.Apps, want[m.Node]) {
			t.Errorf("%s announces %v, want %v", m.Node, m.Apps, want[m.Node])
		}
	}
	out := ok(t, srv, "status", "-wait", "300ms")
	contains(t, "status", out, "VERSIONS", "car-insurance@1,2 card@1 payment@1", "every live member materializes: car-insurance@1 card@1 payment@1")
}
