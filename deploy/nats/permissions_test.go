// Package nats_test checks permissions.conf, the NATS users and
// permissions of understudy's roles, against a real server: every role
// does its whole job with its own user (no permission violation), and
// cannot do what another role does.
package nats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cmd/replay/replaycmd"
	"understudy/gateway"
	"understudy/group"
	"understudy/internal/syncbuf"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/node/nodetest"
)

var passwords = map[string]string{"node": "n0de-pw", "gateway": "g4teway-pw", "replay": "r3play-pw", "operator": "0perator-pw"}

// serverLog collects what the server logs, to find permission violations.
type serverLog struct{ syncbuf.Buffer }

// violations returns the violation lines logged since the last call.
func (l *serverLog) violations() []string {
	var out []string
	for line := range strings.Lines(l.Take()) {
		if strings.Contains(line, "Violation") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func startServer(t *testing.T) (*brokertest.Server, *serverLog) {
	t.Helper()
	for user, pw := range passwords {
		t.Setenv("UNDERSTUDY_"+strings.ToUpper(user)+"_PASSWORD", pw)
	}
	logs := &serverLog{}
	srv := brokertest.Start(t, brokertest.WithConfigFile("permissions.conf"), func(c *broker.EmbeddedConfig) {
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	return srv, logs
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func as(user string) brokertest.ClientOption { return brokertest.AsUser(user, passwords[user]) }

// startNode runs a node in the test as user "node".
func startNode(t *testing.T, srv *brokertest.Server, name string, role node.Role) *nodetest.Running {
	t.Helper()
	cfg := nodetest.Config(t, srv.ClientConfig(t, as("node")), name, role)
	cfg.Idle, cfg.Retention = 0, 300*time.Millisecond
	return nodetest.Start(t, cfg, modeltest.Registry(), modeltest.Resolver())
}

// browser is a client of the JSON twin, through the gateway.
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
	b := &browser{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	req, _ := http.NewRequest("GET", base+"/", nil)
	b.do(req)
	return b
}

func (b *browser) do(req *http.Request) {
	b.t.Helper()
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
		b.t.Fatal(err)
	}
}

func (b *browser) answer() {
	b.t.Helper()
	form := modeltest.Answers(b.page.Step, 1, 0)
	form.Set("_seq", strconv.FormatUint(b.page.Seq, 10))
	form.Set("_csrf", b.page.CSRF)
	req, _ := http.NewRequest("POST", b.base+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.do(req)
}

func replay(t *testing.T, srv *brokertest.Server, user string, args ...string) (string, error) {
	t.Helper()
	// The connection flags go first, so that a test's own (-timeout) win.
	args = append([]string{args[0], "-nats", srv.URL(), "-nats-user", user, "-nats-password", passwords[user], "-timeout", "15s"}, args[1:]...)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := replaycmd.Main(ctx, replaycmd.Config{Registry: modeltest.Registry(), Mem: modeltest.Resolver()}, args, strings.NewReader(""), &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

// TestRolesDoTheirJobs: a gateway, a primary and a backup, the replay tool
// and an operator, each with its own user, go through provisioning,
// interactions, heartbeats, a failover signal, an erase, the retention
// purge and a graceful failover, without one permission violation.
func TestRolesDoTheirJobs(t *testing.T) {
	srv, logs := startServer(t)
	ctx := context.Background()

	// The gateway provisions the stream and the bucket, and routes.
	gnc := srv.Connect(t, as("gateway"))
	gjs, _ := jetstream.New(gnc)
	_, kv, err := broker.Provision(ctx, gjs, broker.StreamConfig{Logger: brokertest.Logger(t)}, broker.BucketConfig{Logger: brokertest.Logger(t)}, brokertest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gnc, kv, gateway.Config{Lease: 300 * time.Millisecond, Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	front := httptest.NewServer(gw)
	defer front.Close()

	a := startNode(t, srv, "a", node.RolePrimary)
	b := startNode(t, srv, "b", node.RoleBackup)
	kept, gone := newBrowser(t, front.URL), newBrowser(t, front.URL)
	for _, c := range []*browser{kept, gone} {
		c.answer()
		c.answer()
	}
	id := string(kept.page.Session)

	// The replay tool reads everything it shows.
	for _, args := range [][]string{
		{"status", "-wait", "400ms"}, {"list"}, {"history", id}, {"show", id}, {"diff", id, "1", "2"},
		{"preview", id, "-mem"}, {"tail", id, "-history", "-count", "2"}, {"export", id, filepath.Join(t.TempDir(), "x.jsonl")},
	} {
		if out, err := replay(t, srv, "replay", args...); err != nil {
			t.Errorf("replay %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// The gateway's failover signal reaches the group (the primary lives:
	// the answer names it).
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rep, err := group.Signal(sctx, gnc, broker.Subjects{}, group.FailoverRequest{Failed: "a", Reason: group.ReasonOperator})
	cancel()
	if err != nil || rep.Node != "a" {
		t.Fatalf("failover signal: %+v %v", rep, err)
	}

	// An operator erases a session: the primary answers, tombstones and
	// purges; once the retention passes, it purges the tombstone.
	if out, err := replay(t, srv, "operator", "erase", string(gone.page.Session)); err != nil || !strings.Contains(out, "erased by primary a") {
		t.Fatalf("erase: %v\n%s", err, out)
	}
	brokertest.WaitFor(t, 10*time.Second, "the erased session's tombstone to be purged", func() bool {
		_, err := replay(t, srv, "replay", "history", string(gone.page.Session))
		return errors.Is(err, replaycmd.ErrNoSession)
	})

	// A graceful failover: the backup takes over, the session goes on.
	a.Stop()
	brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool {
		st, _ := b.Status()
		return st.Role == "primary" && st.Ready
	})
	kept.answer()
	kept.answer()
	b.Stop()
	gw.Close()

	if v := logs.violations(); len(v) > 0 {
		t.Fatalf("permission violations:\n%s", strings.Join(v, "\n"))
	}
}

// TestRolesCannotOverstep: the read-only replay user cannot write a
// snapshot, the group entry or a failover signal, erase, purge or delete;
// the gateway cannot write snapshots; a node cannot send failover signals
// or delete the stream. Each attempt is refused by the server, and what it
// would have changed is unchanged.
func TestRolesCannotOverstep(t *testing.T) {
	srv, logs := startServer(t)
	ctx := context.Background()
	ojs := srv.JetStream(t, as("operator"))
	stream, kv, err := broker.Provision(ctx, ojs, broker.StreamConfig{Logger: brokertest.Logger(t)}, broker.BucketConfig{Logger: brokertest.Logger(t)}, brokertest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, srv, "a", node.RolePrimary)
	c := newBrowser(t, a.URL)
	c.answer()
	id := c.page.Session
	subject, _ := broker.Subjects{}.SessionSubject(string(id))
	last := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	// Every failover signal anyone manages to send is seen here.
	var signals sync.Map
	onc := srv.Connect(t, as("operator"))
	if _, err := onc.Subscribe(broker.Subjects{}.FailoverSubject(), func(m *nats.Msg) { signals.Store(string(m.Data), true) }); err != nil {
		t.Fatal(err)
	}
	onc.Flush()
	before := last()
	logs.violations()

	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed", what)
		}
		if v := logs.violations(); len(v) == 0 {
			t.Errorf("%s: no permission violation logged (error %v)", what, err)
		}
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }

	for _, user := range []string{"replay", "gateway"} {
		js := srv.JetStream(t, as(user))
		cctx, cancel := short()
		_, err := js.Publish(cctx, subject, []byte("injected"))
		cancel()
		refused(user+": publish a snapshot", err)
	}
	for _, user := range []string{"replay", "node"} {
		nc := srv.Connect(t, as(user))
		cctx, cancel := short()
		_, err := group.Signal(cctx, nc, broker.Subjects{}, group.FailoverRequest{Failed: "a", Reason: group.ReasonOperator})
		cancel()
		refused(user+": failover signal", err)
	}
	rjs := srv.JetStream(t, as("replay"))
	rkv, err := rjs.KeyValue(ctx, broker.Subjects{}.GroupsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rkv.Get(ctx, group.DefaultGroup); err != nil {
		t.Fatalf("replay: read the group entry: %v", err)
	}
	cctx, cancel := short()
	_, err = rkv.Put(cctx, group.DefaultGroup, []byte(`{"epoch":99,"owner":"mallory"}`))
	cancel()
	refused("replay: write the group entry", err)
	rstream, err := rjs.Stream(ctx, broker.Subjects{}.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel = short()
	refused("replay: purge", rstream.Purge(cctx, jetstream.WithPurgeSubject(subject)))
	cancel()
	cctx, cancel = short()
	refused("replay: delete a message", rstream.DeleteMsg(cctx, before))
	cancel()
	cctx, cancel = short()
	refused("replay: delete the stream", rjs.DeleteStream(cctx, broker.Subjects{}.StreamName()))
	cancel()
	out, err := replay(t, srv, "replay", "erase", string(id), "-timeout", "3s")
	if err == nil || !strings.Contains(out+err.Error(), "permission") {
		t.Errorf("replay: erase: %v\n%s", err, out)
	}
	logs.violations()
	njs := srv.JetStream(t, as("node"))
	cctx, cancel = short()
	refused("node: delete the stream", njs.DeleteStream(cctx, broker.Subjects{}.StreamName()))
	cancel()
	cctx, cancel = short()
	_, err = njs.UpdateStream(cctx, jetstream.StreamConfig{Name: broker.Subjects{}.StreamName(), Subjects: []string{">"}})
	cancel()
	refused("node: change the stream", err)
	gnc := srv.Connect(t, as("gateway"))
	refused("gateway: erase request", func() error {
		_, err := gnc.Request(broker.Subjects{}.EraseSubject(), []byte(`{"session":"`+string(id)+`"}`), time.Second)
		return err
	}())

	// Nothing changed: the stream, the group entry, the session, and no
	// signal reached the group.
	if got := last(); got != before {
		t.Errorf("the stream's last sequence moved from %d to %d", before, got)
	}
	e, err := kv.Get(ctx, group.DefaultGroup)
	if err != nil || !bytes.Contains(e.Value(), []byte(`"owner":"a"`)) {
		t.Errorf("group entry %s, %v", e.Value(), err)
	}
	signals.Range(func(k, _ any) bool {
		t.Errorf("a failover signal got through: %s", k)
		return true
	})
	c.answer()
}
