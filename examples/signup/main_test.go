package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"understudy/broker/brokertest"
	"understudy/internal/deploy"
)

// TestSignupRuns runs the example as its main would, against a real NATS,
// and walks its application to the end over HTTP.
func TestSignupRuns(t *testing.T) {
	srv := brokertest.Start(t)
	port, err := deploy.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-node", "ex", "-role", "primary", "-listen", "127.0.0.1:" + strconv.Itoa(port), "-nats", srv.URL()})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var pg struct {
		Step, CSRF string
		Seq        uint64
		Finished   bool
		Values     map[string]any
	}
	call := func(req *http.Request) int {
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&pg)
		return resp.StatusCode
	}
	brokertest.WaitFor(t, 20*time.Second, "the example to serve", func() bool {
		req, _ := http.NewRequest("GET", base+"/", nil)
		return call(req) == http.StatusOK
	})
	answers := map[string]url.Values{
		"about":           {"name": {"Ada"}, "email": {"ada@example.com"}},
		"interests/topic": {"topic": {"nats"}},
		"confirm/terms":   {"agree": {"on"}},
	}
	for !pg.Finished {
		form := answers[pg.Step]
		if form == nil {
			t.Fatalf("no answers for %q", pg.Step)
		}
		form.Set("_seq", strconv.FormatUint(pg.Seq, 10))
		form.Set("_csrf", pg.CSRF)
		req, _ := http.NewRequest("POST", base+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if code := call(req); code != http.StatusOK {
			t.Fatalf("answering: %d", code)
		}
	}
	welcome, _ := pg.Values["welcome"].(map[string]any)
	if welcome["line"] != "Welcome Ada! You like nats." {
		t.Fatalf("welcome %v", pg.Values["welcome"])
	}
}
