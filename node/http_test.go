package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"understudy/broker/brokertest"
	"understudy/group"
	"understudy/model/modeltest"
	"understudy/node"
)

// rawRequest sends req as raw bytes on a new connection, so that the test
// can send what a Go client refuses to (control characters in a cookie),
// and returns the response's status code (0 if the server closed the
// connection without answering).
func rawRequest(t *testing.T, base, req string) (int, http.Header) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestHostileSessionIDs: a cookie that is not a session id (subject
// characters, spaces, control characters, 10 KB, not canonical) never
// reaches a subject: a GET starts a fresh application with a new id, a
// POST is refused with 400 and a new id, and the node goes on serving.
func TestHostileSessionIDs(t *testing.T) {
	_, a := setup(t)
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0)
	valid := string(c.page.Session)
	forged := []string{
		".", "*", ">", "a.b", "understudy.sess.>", valid[:25] + "*", valid[:25] + ".",
		"a b", valid[:12] + " " + valid[13:], "\x01\x02", valid[:25] + "\x7f", valid[:25] + "\t",
		strings.Repeat("z", 10<<10), strings.ToUpper(valid), valid[:25] + "z", // not canonical: the last character carries 2 unused bits
		valid + "a", valid[:25], "%2e%2a%3e", "é" + valid[2:], "",
	}
	for _, id := range forged {
		for _, method := range []string{"GET", "POST"} {
			body := ""
			if method == "POST" {
				body = url.Values{"_seq": {"1"}, "_csrf": {c.page.CSRF}}.Encode()
			}
			req := fmt.Sprintf("%s / HTTP/1.1\r\nHost: node\r\nAccept: application/json\r\nCookie: %s=%s\r\n"+
				"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				method, node.DefaultCookie, id, len(body), body)
			code, h := rawRequest(t, a.URL, req)
			switch {
			case code == 0 || code >= 500:
				t.Errorf("%s with cookie %.24q: %d", method, id, code)
			case method == "POST" && code != http.StatusBadRequest && code != http.StatusGone:
				t.Errorf("POST with cookie %.24q: %d, want 400", id, code)
			case method == "GET" && code == http.StatusOK && !strings.Contains(h.Get("Set-Cookie"), node.DefaultCookie+"="):
				t.Errorf("GET with cookie %.24q: no fresh id", id)
			}
		}
	}
	// A header past the server's limit is refused by net/http itself.
	code, _ := rawRequest(t, a.URL, "GET / HTTP/1.1\r\nHost: node\r\nCookie: "+node.DefaultCookie+"="+strings.Repeat("z", 40<<10)+"\r\n\r\n")
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 40 KB cookie: %d, want 431", code)
	}
	// The real session is unharmed.
	c.answer(1, 0)
}

// TestCrossSitePost: a form another site makes a browser post carries the
// session's cookie at best, never its CSRF token: refused, and the session
// is unchanged.
func TestCrossSitePost(t *testing.T) {
	srv, a := setup(t)
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0)
	before := c.page
	form := modeltest.Answers("vehicle", 1, 0)
	form.Set("_seq", fmt.Sprint(before.Seq))
	req, _ := http.NewRequest("POST", a.URL+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Referer", "https://evil.example/page")
	resp, _ := c.do(req)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post without a token: %d, want 403", resp.StatusCode)
	}
	if _, p := c.get(); p.Seq != before.Seq || p.Step != before.Step {
		t.Fatalf("after the cross-site post: %s at %d, want %s at %d", p.Step, p.Seq, before.Step, before.Seq)
	}
	if st := latest(t, srv, c); st.Seq != before.Seq {
		t.Fatalf("the stream holds seq %d, want %d", st.Seq, before.Seq)
	}
	c.answer(1, 0)
}

// TestSlowClients: clients that trickle their headers or bodies (a
// slowloris) hold a connection each and nothing more: other requests are
// answered at once, and the server drops the slow headers once its read
// header timeout (5 s) has passed.
func TestSlowClients(t *testing.T) {
	_, a := setup(t)
	slowHeaders := slowloris(t, a.URL, 20, "GET / HTTP/1.1\r\nHost: node\r\n")
	slowBodies := slowloris(t, a.URL, 20, "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n_seq=0&")
	c := newClient(t, a.URL)
	for i := range 5 {
		start := time.Now()
		c.get()
		if i == 0 {
			c.answer(1, 0)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("a request took %v beside the slow clients", took)
		}
	}
	brokertest.WaitFor(t, 15*time.Second, "the node to drop the slow headers", func() bool {
		for _, s := range slowHeaders {
			if !s.closed() {
				return false
			}
		}
		return true
	})
	_ = slowBodies // dropped by the 15 s read timeout; not waited for
}

// slow is one trickling connection.
type slow struct {
	conn net.Conn
	done chan struct{}
}

func (s *slow) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// slowloris opens n connections that send start and then one byte every
// 200 ms, until the server closes them or the test ends.
func slowloris(t *testing.T, base string, n int, start string) []*slow {
	t.Helper()
	var out []*slow
	for range n {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		s := &slow{conn: conn, done: make(chan struct{})}
		out = append(out, s)
		t.Cleanup(func() { conn.Close() })
		go func() {
			defer close(s.done)
			if _, err := io.WriteString(conn, start); err != nil {
				return
			}
			for {
				// A read that fails (EOF, reset) says the server closed it.
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				var b [512]byte
				_, err := conn.Read(b[:])
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					return
				}
				if _, err := conn.Write([]byte("X")); err != nil {
					return
				}
			}
		}()
	}
	return out
}

// TestNewSessionRateLimit: a flood of new sessions from one client is cut
// off by the per-client rate limit; another client still starts sessions,
// and sessions that exist keep working.
func TestNewSessionRateLimit(t *testing.T) {
	srv := brokertest.Start(t)
	a := start(t, srv, "a", node.RolePrimary, func(c *node.Config) { c.NewPerMinute = 3 })
	existing := newClient(t, a.URL)
	existing.get()
	existing.answer(1, 0)
	from := func(addr string) int {
		c := newClient(t, a.URL)
		c.get()
		form := modeltest.Answers("applicant", 1, 0)
		form.Set("_seq", "0")
		form.Set("_csrf", c.page.CSRF)
		req, _ := http.NewRequest("POST", a.URL+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", addr)
		resp, _ := c.do(req)
		return resp.StatusCode
	}
	codes := []int{}
	for range 10 {
		codes = append(codes, from("203.0.113.7"))
	}
	// "existing" used one of the loopback client's tokens, not this one's.
	want := []int{200, 200, 200, 429, 429, 429, 429, 429, 429, 429}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("a flood from one client: %v, want %v", codes, want)
	}
	if code := from("198.51.100.9"); code != http.StatusOK {
		t.Fatalf("another client: %d", code)
	}
	existing.answer(1, 0)
}

// TestNATSDownAtStart: a node started before NATS serves nothing, says on
// /readyz why it is not ready, keeps trying, and becomes ready (here: the
// primary) once NATS is up, without a restart.
func TestNATSDownAtStart(t *testing.T) {
	srv := brokertest.Start(t)
	srv.Stop()
	cfg := node.Config{
		Node: "a", Role: node.RolePrimary, Listen: "127.0.0.1:0", NATS: srv.ClientConfig(t),
		Group:  group.Config{Lease: 300 * time.Millisecond, Heartbeat: 100 * time.Millisecond},
		Logger: brokertest.Logger(t),
	}
	n, err := node.New(cfg, modeltest.Registry(), modeltest.Resolver())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := n.Listen()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	readyz := func() (int, map[string]any) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	brokertest.WaitFor(t, 10*time.Second, "/readyz to say it is connecting to NATS", func() bool {
		code, v := readyz()
		reason, _ := v["reason"].(string)
		return code == http.StatusServiceUnavailable && v["ready"] == false && strings.Contains(reason, "connecting to NATS at "+srv.URL())
	})
	if resp, p := newClient(t, base).get(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a page with NATS down: %d %+v", resp.StatusCode, p)
	}
	// NATS stays down for a while (the node retries with backoff meanwhile),
	// then comes up.
	time.Sleep(time.Second)
	if code, _ := readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with NATS still down: %d", code)
	}
	srv.Start()
	brokertest.WaitFor(t, 20*time.Second, "the node to be ready", func() bool {
		code, v := readyz()
		return code == http.StatusOK && v["reason"] == "primary"
	})
	c := newClient(t, base)
	c.get()
	c.answer(1, 0)
}
