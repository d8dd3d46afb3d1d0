package node_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"understudy/broker"
	"understudy/broker/brokertest"
	"understudy/model/modeltest"
	"understudy/node"
	"understudy/node/nodetest"
)

// FuzzSubmitForm posts arbitrary bodies to a primary's handler, against a
// real NATS started once: as a new session's first interaction, to a live
// session (with its CSRF token and sequence, or stale), and with cookies
// that are no session's. The node answers each with a status it documents,
// never 500, always with a page or its JSON twin, and keeps serving.
func FuzzSubmitForm(f *testing.F) {
	// Nothing may log through f while the fuzz function runs (testing
	// panics): the server, the client and the node log nowhere.
	quiet := slog.New(slog.DiscardHandler)
	srv := brokertest.Start(f, brokertest.WithSyncInterval(time.Minute), func(c *broker.EmbeddedConfig) { c.Logger = quiet })
	natsCfg := srv.ClientConfig(f)
	natsCfg.Logger = quiet
	cfg := nodetest.Config(f, natsCfg, "a", node.RolePrimary)
	// Every execution may start sessions: idle ones end, as in
	// production, so that a long run stays under the session cap.
	cfg.NewPerMinute, cfg.Idle, cfg.FinishedLinger, cfg.MaxSessions, cfg.Logger = -1, 2*time.Second, time.Second, 50_000, quiet
	h := nodetest.Start(f, cfg, modeltest.Registry(), modeltest.Resolver()).Node.Handler()

	// post sends a form to the handler, with a session cookie if id is set.
	post := func(id, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		if id != "" {
			req.AddCookie(&http.Cookie{Name: node.DefaultCookie, Value: id})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	// fresh returns a new session at its second page, and its CSRF token.
	applicant := modeltest.Answers("applicant", 1, 0)
	applicant.Set("_seq", "0")
	fresh := func(t testing.TB) (string, string) {
		w := post("", applicant.Encode())
		var p struct {
			Session string `json:"session"`
			CSRF    string `json:"csrf"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &p); w.Code != http.StatusOK || err != nil || p.Session == "" {
			t.Fatalf("a new session: %d %s", w.Code, w.Body.String())
		}
		return p.Session, p.CSRF
	}
	fresh(f)

	f.Add(uint8(0), "name=Ada&email=ada%40example.com&born=1985-12-10&street=x&city=y&postcode=z")
	f.Add(uint8(0), applicant.Encode())
	f.Add(uint8(1), modeltest.Answers("vehicle", 1, 0).Encode())
	f.Add(uint8(1), "_seq=0&name=%ff%fe")
	f.Add(uint8(2), "%zz&&==&_csrf=&_seq=-1")
	f.Add(uint8(1), "_seq=99999999999999999999999&car=v1")
	f.Add(uint8(3), strings.Repeat("a=b&", 3000))
	f.Add(uint8(1), "car=v1&car=v2&mileage=1e400&registration=%00")
	f.Add(uint8(4), "car=v1")
	f.Add(uint8(1), "_action=back")
	f.Add(uint8(1), "_action=change&_change=2")
	f.Add(uint8(0), "_seq=0&_action=back")
	f.Add(uint8(1), "born-day=31&born-month=2&born-year=1985&_action=submit")

	f.Fuzz(func(t *testing.T, mode uint8, body string) {
		var w *httptest.ResponseRecorder
		switch mode % 5 {
		case 0: // a first interaction: no cookie
			w = post("", body)
		case 1: // a live session's next interaction, with its token and sequence first
			id, csrf := fresh(t)
			w = post(id, "_seq=1&_csrf="+csrf+"&"+body)
		case 2: // a live session, token and sequence from the fuzzer's body only
			id, _ := fresh(t)
			w = post(id, body)
		case 3: // a cookie that is no session id
			w = post("a.b.>", body)
		case 4: // not a form
			req := httptest.NewRequest("POST", "/", strings.NewReader(body))
			req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
			req.Header.Set("Accept", "application/json")
			w = httptest.NewRecorder()
			h.ServeHTTP(w, req)
		}
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusGone,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable:
		default:
			t.Fatalf("mode %d body %.60q: status %d: %s", mode%5, body, w.Code, w.Body.String())
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("mode %d body %.60q: not JSON: %v", mode%5, body, err)
		}
	})
}
