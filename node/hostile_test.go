package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/internal/syncbuf"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/snapshot"
)

// hostile is a way to spoil a session's newest snapshot: given the session
// as the stream holds it (decoded) and another session's valid payload, it
// returns the session whose envelope the headers should claim and the
// payload to publish.
type hostile struct {
	name string
	make func(t *testing.T, s *model.Session, other []byte) (*model.Session, []byte)
}

const marker = "MARKER-VALUE"

var markerHex = hex.EncodeToString(append([]byte{0x60 + byte(len(marker))}, marker...))

// withMarker gives s's first interactive step the params {"a": 1, "b":
// marker} and encodes it, so that a case can put any bytes where a value
// belongs.
func withMarker(t *testing.T, s *model.Session) []byte {
	t.Helper()
	for _, st := range s.Pool.Interactive {
		st.Params = model.ParamsOf(map[string]model.Value{"a": model.IntVal(1), "b": model.StringVal(marker)})
		break
	}
	b, err := cbor.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func swap(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	o, err1 := hex.DecodeString(strings.ReplaceAll(old, " ", ""))
	n, err2 := hex.DecodeString(strings.ReplaceAll(new, " ", ""))
	i := bytes.Index(b, o)
	if err1 != nil || err2 != nil || i < 0 {
		t.Fatalf("%s not in the snapshot", old)
	}
	return append(append(append([]byte{}, b[:i]...), n...), b[i+len(o):]...)
}

func marshal(t *testing.T, s *model.Session) []byte {
	t.Helper()
	b, err := cbor.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var hostiles = []hostile{
	{"truncated", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		b := marshal(t, s)
		return s, b[:len(b)-10]
	}},
	{"corrupt tail", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		b := marshal(t, s)
		copy(b[len(b)-8:], bytes.Repeat([]byte{0xff}, 8))
		return s, b
	}},
	{"garbage", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		return s, bytes.Repeat([]byte("\x9f\xff garbage "), 50)
	}},
	{"deeply nested", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		return s, swap(t, withMarker(t, s), markerHex, strings.Repeat("81", 200)+"01")
	}},
	{"huge declared length", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		return s, swap(t, withMarker(t, s), markerHex, "9b 7fffffffffffffff")
	}},
	{"huge string", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		return s, swap(t, withMarker(t, s), markerHex, "7a ffffffff")
	}},
	{"duplicate key", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		return s, swap(t, withMarker(t, s), "61 62"+markerHex, "61 61 01")
	}},
	{"unknown tag", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		return s, swap(t, withMarker(t, s), markerHex, "d8 20 60")
	}},
	{"unknown application", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		s.App = "no-such-app"
		return s, marshal(t, s)
	}},
	{"unknown version", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		s.Version = 99
		return s, marshal(t, s)
	}},
	{"unknown step", func(t *testing.T, s *model.Session, _ []byte) (*model.Session, []byte) {
		for _, st := range s.Pool.Interactive {
			st.Path = "no-such-step"
		}
		return s, marshal(t, s)
	}},
	{"another session's snapshot", func(t *testing.T, s *model.Session, other []byte) (*model.Session, []byte) {
		return s, other
	}},
}

// TestPromotedBackupQuarantinesHostileSnapshots: the stream holds, under
// valid headers, hostile or broken snapshots of some sessions when a backup
// is promoted. Each of those sessions is quarantined: its user gets a clear
// page saying it cannot be restored (and a way to start again), and every
// other session is served. Nothing panics.
func TestPromotedBackupQuarantinesHostileSnapshots(t *testing.T) {
	for _, cold := range []bool{false, true} {
		t.Run(fmt.Sprintf("cold=%v", cold), func(t *testing.T) {
			srv := brokertest.Start(t, brokertest.WithSyncInterval(time.Minute))
			logs := &syncbuf.Buffer{}
			logTo := func(c *node.Config) {
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			a := start(t, srv, "a", node.RolePrimary, logTo)
			b := start(t, srv, "b", node.RoleBackup, logTo, func(c *node.Config) { c.Cold = cold })

			// Every client answers the first page; the good ones will go on.
			clients := make([]*client, len(hostiles)+3)
			for i := range clients {
				c := newClient(t, a.URL)
				c.get()
				c.answer(1, 0)
				clients[i] = c
			}
			good, bad := clients[len(hostiles):], clients[:len(hostiles)]

			js := srv.JetStream(t)
			other := latest(t, srv, good[0])
			for i, h := range hostiles {
				st := latest(t, srv, bad[i])
				s, err := cbor.Decode(st.Data)
				if err != nil {
					t.Fatal(err)
				}
				s.Seq++ // a later interaction than the one the stream holds
				s, data := h.make(t, s, other.Data)
				m := snapshot.Meta{Session: bad[i].page.Session, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion, Prev: st.StreamSeq}
				publishRaw(t, js, m, data)
			}
			// A message on the session stream that is no session's.
			if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "understudy.sess.not-a-session", Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}

			a.Stop() // hands over: b claims at once
			brokertest.WaitFor(t, 10*time.Second, "b to serve", func() bool {
				st, ok := b.Status()
				return ok && st.Role == "primary" && st.Ready
			})
			ids := make([]model.SessionID, len(bad))
			for i, h := range hostiles {
				c := bad[i]
				c.base, ids[i] = b.URL, c.page.Session
				for _, do := range []func() (*http.Response, page){c.get, func() (*http.Response, page) { return c.post(modeltest.Answers("vehicle", 1, 0)) }} {
					resp, p := do()
					if resp.StatusCode != http.StatusInternalServerError || p.Reason != node.ReasonQuarantined || !strings.Contains(p.Error, string(c.page.Session)) {
						t.Errorf("%s: %d %+v, want a page saying the session cannot be restored", h.name, resp.StatusCode, p)
					}
				}
				// Starting again (the page's link) gives a new session.
				req, _ := http.NewRequest("GET", c.base+"/?new=1", nil)
				if resp, p := c.do(req); resp.StatusCode != http.StatusOK || p.Step != "applicant" || p.Session == ids[i] {
					t.Errorf("%s: starting again: %d %+v", h.name, resp.StatusCode, p.Page)
				}
			}
			for _, c := range good {
				c.base = b.URL
				if resp, p := c.get(); resp.StatusCode != http.StatusOK || p.Step != "vehicle" {
					t.Fatalf("a good session on b: %d %+v", resp.StatusCode, p.Page)
				}
				c.answer(1, 0)
			}
			fresh := newClient(t, b.URL)
			fresh.get()
			fresh.answer(1, 0)
			// Each spoiled session counts once among those quarantined now,
			// whether the copy or the takeover found it.
			if text := scrape(t, b); !metricLine(text, "understudy_sessions_quarantined", fmt.Sprint(len(hostiles))) {
				t.Errorf("sessions quarantined now, want %d:\n%s", len(hostiles), grepLines(text, "quarantined"))
			}

			text := logs.String()
			for line := range strings.Lines(text) {
				if strings.Contains(line, "quarantined") {
					t.Log(strings.TrimSpace(line))
				}
			}
			if strings.Contains(text, "panic") {
				t.Fatalf("the logs report a panic:\n%s", text)
			}
			for i, h := range hostiles {
				if !strings.Contains(text, string(ids[i])) {
					t.Errorf("%s: the logs never name session %s", h.name, ids[i])
				}
			}
		})
	}
}

// publishRaw publishes a message on m.Session's subject with m's headers.
func publishRaw(t *testing.T, js jetstream.JetStream, m snapshot.Meta, data []byte) {
	t.Helper()
	subject, err := broker.Subjects{}.SessionSubject(string(m.Session))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Header: m.Header(data), Data: data}); err != nil {
		t.Fatal(err)
	}
}

func brokertestLogger(w *syncbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
