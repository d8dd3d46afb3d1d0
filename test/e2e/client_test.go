//go:build e2e

package e2e

import (
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

// page is a page's JSON twin, as a client reads it.
type page struct {
	Session  string            `json:"session"`
	Step     string            `json:"step"`
	Seq      uint64            `json:"seq"`
	Version  int               `json:"version"` // of the application the page belongs to
	Finished bool              `json:"finished"`
	CSRF     string            `json:"csrf"`
	Stale    bool              `json:"stale"`
	Errors   map[string]string `json:"errors"`
	Values   map[string]any    `json:"values"`
	Error    string            `json:"error"`
}

// sent is one acknowledged interaction of a session's history.
type sent struct {
	Step   string
	Seq    uint64
	Values url.Values
	At     time.Time
	Took   time.Duration
	Node   string
	// Version is the application version of the page the answer led to:
	// what the session was published on.
	Version int
}

// shopper walks one session through the demo application, as a browser
// would, through a gateway.
type shopper struct {
	id      int // which customer's answers
	drivers int
	base    string
	http    *http.Client
	page    page
	history []sent
	errs    []string
	driver  int
	think   time.Duration // a person reading the page before answering
	failed  string        // why the session failed; "" if it did not
}

func newShopper(id int, base string) *shopper {
	jar, _ := cookiejar.New(nil)
	return &shopper{id: id, drivers: 1 + id%3, base: base, http: &http.Client{Jar: jar, Timeout: 60 * time.Second},
		think: time.Duration(40+id%5*20) * time.Millisecond}
}

func (s *shopper) fail(format string, args ...any) {
	s.errs = append(s.errs, fmt.Sprintf("session %d (%s): ", s.id, s.page.Session)+fmt.Sprintf(format, args...))
}

func (s *shopper) do(req *http.Request) (*http.Response, page, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, page{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// Cut off in the middle of the answer (a gateway killed while it
		// sent it): no answer was read.
		return nil, page{}, fmt.Errorf("status %d, body cut off: %w", resp.StatusCode, err)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		return resp, p, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return resp, p, nil
}

// start opens the application.
func (s *shopper) start() bool {
	req, _ := http.NewRequest("GET", s.base+"/", nil)
	resp, p, err := s.do(req)
	if err != nil || resp.StatusCode != 200 {
		s.fail("first page: %v %v", statusOf(resp), err)
		return false
	}
	s.page = p
	return true
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "no response"
	}
	return resp.StatusCode
}

// answers returns what this shopper answers on the current page.
func (s *shopper) answers() url.Values {
	if s.page.Step == demo.StepDriver {
		return demo.DriverAnswers(s.id, s.driver, s.driver < s.drivers-1)
	}
	return demo.Answers(s.page.Step, s.id)
}

// step submits the current page. It returns false when the session is
// finished or failed.
func (s *shopper) step() bool {
	if s.page.Finished {
		return false
	}
	time.Sleep(s.think)
	vals := s.answers()
	form := url.Values{}
	for k, v := range vals {
		form[k] = v
	}
	form.Set("_seq", strconv.FormatUint(s.page.Seq, 10))
	form.Set("_csrf", s.page.CSRF)
	req, _ := http.NewRequest("POST", s.base+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	t0 := time.Now()
	resp, p, err := s.do(req)
	took := time.Since(t0)
	if err != nil || resp.StatusCode != 200 {
		s.fail("answering %s at seq %d: %v %v %s", s.page.Step, s.page.Seq, statusOf(resp), err, p.Error)
		return false
	}
	// Exactly once: every acknowledged answer moves the session one step.
	if p.Seq != s.page.Seq+1 {
		s.fail("answered %s at seq %d, now at seq %d (stale=%v)", s.page.Step, s.page.Seq, p.Seq, p.Stale)
		return false
	}
	s.history = append(s.history, sent{Step: s.page.Step, Seq: s.page.Seq, Values: vals, At: t0, Took: took, Node: resp.Header.Get("Understudy-Node"), Version: p.Version})
	if s.page.Step == demo.StepDriver {
		s.driver++
	}
	s.page = p
	return !p.Finished
}

// check verifies the finished session against its history: every
// acknowledged answer is in the final state, exactly once.
func (s *shopper) check() {
	if !s.page.Finished {
		s.fail("not finished: at %s", s.page.Step)
		return
	}
	if uint64(len(s.history)) != s.page.Seq {
		s.fail("%d answers acknowledged, final seq %d", len(s.history), s.page.Seq)
	}
	v := s.page.Values
	get := func(path ...string) any {
		var cur any = v
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[p]
		}
		return cur
	}
	drivers, _ := get("drivers").([]any)
	if len(drivers) != s.drivers {
		s.fail("%d drivers in the final state, %d answered", len(drivers), s.drivers)
	}
	k := 0
	for _, h := range s.history {
		switch h.Step {
		case demo.StepApplicant:
			got := get("applicant", "name")
			if got == nil {
				// Version 2 of the quote keeps the name in two parts.
				first, _ := get("applicant", "first").(string)
				last, _ := get("applicant", "last").(string)
				got = demo.JoinName(first, last)
			}
			if got != h.Values.Get("name") {
				s.fail("applicant name %v, answered %q", got, h.Values.Get("name"))
			}
			if got := get("applicant", "email"); got != h.Values.Get("email") {
				s.fail("email %v, answered %q", got, h.Values.Get("email"))
			}
		case demo.StepVehicle:
			if got := get("vehicle", "registration"); got != h.Values.Get("registration") {
				s.fail("registration %v, answered %q", got, h.Values.Get("registration"))
			}
		case demo.StepDriver:
			if k < len(drivers) {
				d, _ := drivers[k].(map[string]any)
				if d["name"] != h.Values.Get("name") {
					s.fail("driver %d is %v, answered %q", k, d["name"], h.Values.Get("name"))
				}
			}
			k++
		case demo.StepConfirm:
			if got := get("confirm", "agree"); got != true {
				s.fail("confirm.agree %v", got)
			}
		}
	}
}
