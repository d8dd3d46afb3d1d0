// Package shopper is the benchmarks' browser: one session of the demo
// quote walked page by page through HTTP, one request at a time, reading
// each page's JSON twin (Accept: application/json) and answering it with
// demo.Answers, as test/e2e's client does. Any serving node or gateway
// that speaks the demo's JSON twin can be driven: understudy's node, or
// the Redis-backed baseline in bench/redisnode.
package shopper

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"understudy/demo"
)

// Page is a page's JSON twin, as a client reads it.
type Page struct {
	Session  string            `json:"session"`
	Step     string            `json:"step"`
	Seq      uint64            `json:"seq"`
	Finished bool              `json:"finished"`
	CSRF     string            `json:"csrf"`
	Stale    bool              `json:"stale"`
	Errors   map[string]string `json:"errors"`
	Error    string            `json:"error"`
}

// Answer is one acknowledged interaction.
type Answer struct {
	Step  string
	Start time.Time
	End   time.Time
	Node  string // the node that answered (Understudy-Node)
}

// Took is the interaction's latency as the client saw it.
func (a Answer) Took() time.Duration { return a.End.Sub(a.Start) }

// Shopper walks one session of the demo quote.
type Shopper struct {
	id      int
	drivers int
	driver  int
	base    string
	client  *http.Client
	page    Page
	started bool
}

// New returns the shopper for customer id (demo.Answers' i) against base
// ("http://127.0.0.1:8080"), sending through tr (shared by many shoppers;
// nil: a fresh transport). It names 1 to 3 drivers, by id.
func New(id int, base string, tr http.RoundTripper) *Shopper {
	jar, _ := cookiejar.New(nil)
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Shopper{id: id, drivers: 1 + id%3, base: strings.TrimRight(base, "/"),
		client: &http.Client{Jar: jar, Transport: tr, Timeout: 60 * time.Second}}
}

// At returns the shopper, where it is in its session, sending to base
// instead: the same session behind another address of the same host
// (cookies are kept by host).
func (s *Shopper) At(base string) *Shopper {
	c := *s
	c.base = strings.TrimRight(base, "/")
	return &c
}

// Page returns the page the session shows now.
func (s *Shopper) Page() Page { return s.page }

// Finished reports whether the quote is finished.
func (s *Shopper) Finished() bool { return s.page.Finished }

// Start opens the application (GET /): the first page.
func (s *Shopper) Start(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/", nil)
	if err != nil {
		return err
	}
	resp, p, err := s.do(req)
	if err != nil {
		return fmt.Errorf("first page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("first page: status %d (%s) %s", resp.StatusCode, resp.Header.Get("Understudy-Unavailable"), p.Error)
	}
	s.page, s.started = p, true
	return nil
}

// Step answers the page shown and returns the acknowledged interaction.
// An error means the interaction was not acknowledged as the next one of
// the session: a status other than 200, or a page at another sequence.
func (s *Shopper) Step(ctx context.Context) (Answer, error) {
	if !s.started {
		return Answer{}, fmt.Errorf("shopper %d: not started", s.id)
	}
	if s.page.Finished {
		return Answer{}, fmt.Errorf("shopper %d: finished", s.id)
	}
	form := s.answers()
	form.Set("_seq", strconv.FormatUint(s.page.Seq, 10))
	form.Set("_csrf", s.page.CSRF)
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a := Answer{Step: s.page.Step, Start: time.Now()}
	resp, p, err := s.do(req)
	a.End = time.Now()
	if err != nil {
		return a, fmt.Errorf("answering %s at seq %d: %w", s.page.Step, s.page.Seq, err)
	}
	a.Node = resp.Header.Get("Understudy-Node")
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("answering %s at seq %d: status %d (%s) %s", s.page.Step, s.page.Seq, resp.StatusCode,
			resp.Header.Get("Understudy-Unavailable"), p.Error)
	}
	if p.Seq != s.page.Seq+1 {
		return a, fmt.Errorf("answered %s at seq %d, now at seq %d (stale=%v)", s.page.Step, s.page.Seq, p.Seq, p.Stale)
	}
	if s.page.Step == demo.StepDriver {
		s.driver++
	}
	s.page = p
	return a, nil
}

// answers returns what this shopper answers on the current page.
func (s *Shopper) answers() url.Values {
	if s.page.Step == demo.StepDriver {
		return demo.DriverAnswers(s.id, s.driver, s.driver < s.drivers-1)
	}
	return demo.Answers(s.page.Step, s.id)
}

func (s *Shopper) do(req *http.Request) (*http.Response, Page, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, Page{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, Page{}, err
	}
	var p Page
	if err := json.Unmarshal(body, &p); err != nil {
		return resp, p, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return resp, p, nil
}

// Transport returns a transport for many shoppers against one host: it
// keeps up to conns idle connections to it, so that every concurrent
// shopper reuses its connection instead of opening one per request.
func Transport(conns int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.IdleConnTimeout = 2 * time.Minute
	return tr
}
