package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/group"
	"understudy/wire"
)

// Gateway routes a group's traffic to its owner and carries requests
// across failovers. It is an http.Handler.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	nc    *nats.Conn
	mon   *group.Monitor
	proxy *httputil.ReverseProxy
	tr    *http.Transport
	met   *metrics

	mu      sync.Mutex
	running map[string]*failover // by "node@epoch": one signal per failure
	learned group.Entry          // the newest owner a failover reply named
	nobody  bool                 // warned that no backup is left
	tenure  tenure               // the owner attempts go to, and its end

	// freed wakes one request a busy owner turned away, each time an
	// attempt comes back from an owner (a place there may be free).
	freed chan struct{}
	// places bounds the attempts in flight to the owner: MaxInFlight at
	// most, less while the owner turns requests away as busy.
	places *window

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// tenure is an owner at an epoch, with a context that ends when the owner
// changes: every attempt to it is abandoned then (see attempt), with no
// goroutine of its own watching the group.
type tenure struct {
	owner, epoch string
	ctx          context.Context
	end          context.CancelFunc
}

// failover is one failover signal in flight, shared by every request that
// noticed the failure.
type failover struct {
	done chan struct{}
	rep  group.FailoverReply
	err  error
}

// New returns a gateway over the group's bucket. It does no I/O; Start
// begins watching the group.
func New(nc *nats.Conn, kv jetstream.KeyValue, cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Gateway{
		cfg: cfg, log: cfg.Logger, nc: nc,
		mon:     group.NewMonitor(nc, kv, group.MonitorConfig{Subjects: cfg.Subjects, Group: cfg.Group, Logger: cfg.Logger}),
		running: map[string]*failover{},
		freed:   make(chan struct{}),
		places:  newWindow(cfg.MaxInFlight),
		tr: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	g.met = newMetrics(g)
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "owner" // the transport picks the owner per attempt
		},
		Transport:     &retrying{g},
		FlushInterval: -1,
		ErrorHandler:  g.proxyError,
		ErrorLog:      slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Start watches the group and begins failure detection.
func (g *Gateway) Start(ctx context.Context) error {
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if err := g.mon.Start(ctx); err != nil {
		return err
	}
	g.wg.Add(3)
	go g.watchLease()
	go g.checkHealth()
	go g.followOwner()
	return nil
}

// followOwner ends the tenure of an owner that is replaced, at every
// change of the group entry (a renewal is one: the owner is compared).
func (g *Gateway) followOwner() {
	defer g.wg.Done()
	for {
		g.noteOwner()
		select {
		case <-g.ctx.Done():
			g.mu.Lock()
			if g.tenure.end != nil {
				g.tenure.end()
			}
			g.mu.Unlock()
			return
		case <-g.mon.Changed():
		}
	}
}

// noteOwner ends the current tenure if the owner it names is no longer
// the owner.
func (g *Gateway) noteOwner() {
	cur, ok := g.owner()
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tenure
	if t.ctx != nil && ok && t.owner == cur.Owner && t.epoch == fmt.Sprint(cur.Epoch) {
		return
	}
	if t.end != nil {
		t.end()
	}
	g.tenure = tenure{}
	if ok {
		parent := g.ctx
		if parent == nil {
			parent = context.Background() // not started
		}
		ctx, end := context.WithCancel(parent)
		g.tenure = tenure{owner: cur.Owner, epoch: fmt.Sprint(cur.Epoch), ctx: ctx, end: end}
	}
}

// tenureOf returns the context of owner's tenure: one that has ended if
// owner is not the owner the gateway follows now.
func (g *Gateway) tenureOf(owner group.Entry) context.Context {
	for range 2 {
		g.mu.Lock()
		t := g.tenure
		g.mu.Unlock()
		if t.ctx != nil && t.owner == owner.Owner && t.epoch == fmt.Sprint(owner.Epoch) {
			return t.ctx
		}
		// followOwner may not have seen the change route saw yet.
		g.noteOwner()
	}
	ctx, end := context.WithCancel(context.Background())
	end()
	return ctx
}

// Close stops the gateway's background work.
func (g *Gateway) Close() {
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
	g.mon.Close()
	g.tr.CloseIdleConnections()
}

// Monitor returns the gateway's view of the group.
func (g *Gateway) Monitor() *group.Monitor { return g.mon }

// ServeHTTP serves the gateway's own endpoints and proxies everything else.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Write([]byte("ok\n"))
		return
	case "/metrics":
		g.met.handler().ServeHTTP(w, r)
		return
	case "/understudy/group":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(g.mon.Status(3 * time.Second))
		return
	}
	start := time.Now()
	if r.ContentLength > g.cfg.MaxBody {
		g.refuse(w, r, http.StatusRequestEntityTooLarge, "too_large", "The request is larger than this service accepts.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.refuse(w, r, http.StatusRequestEntityTooLarge, "too_large", "The request is larger than this service accepts.")
			return
		}
		g.refuse(w, r, http.StatusBadRequest, "bad_body", "The request could not be read.")
		return
	}
	// The body is buffered so that every attempt sends it again: each
	// gets a reader of its own from GetBody, which the proxy's clone of
	// the request keeps.
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	// One id per client request, kept by its retries (see
	// wire.HeaderRequest); never the client's own.
	r.Header.Set(wire.HeaderRequest, requestID())
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	g.proxy.ServeHTTP(rec, r)
	g.met.requests.WithLabelValues(fmt.Sprint(rec.code)).Inc()
	g.met.requestSeconds.Observe(time.Since(start).Seconds())
}

// requestID draws a fresh random request id.
func requestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	g.met.requests.WithLabelValues(fmt.Sprint(code)).Inc()
	why := wire.UnavailableGateway
	if reason == wire.UnavailableBusy {
		why = wire.UnavailableBusy // load shed: the client's to send again later
	}
	w.Header().Set(wire.HeaderUnavailable, why)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg, "reason": reason})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><title>%s</title><p>%s</p>\n", http.StatusText(code), msg)
}

func wantsJSON(r *http.Request) bool {
	return bytes.Contains([]byte(r.Header.Get("Accept")), []byte("application/json"))
}

func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	if errors.Is(err, errBusy) {
		// Load the machine cannot carry: shed, without a warning per
		// request (the busy metric counts them).
		g.log.Debug("request shed", "path", r.URL.Path, "err", err)
		g.refuse(w, r, http.StatusServiceUnavailable, wire.UnavailableBusy, "We are very busy right now. Please try again in a moment.")
		return
	}
	g.log.Warn("request failed", "path", r.URL.Path, "err", err)
	g.refuse(w, r, http.StatusServiceUnavailable, "unavailable", "The service is unavailable right now. Please try again in a moment.")
}

// retrying is the proxy's transport: it sends each attempt to the owner of
// the moment and retries what can be retried.
type retrying struct{ g *Gateway }

var errNoOwner = errors.New("no primary available")

// The pauses before a request a busy primary turned away is sent again.
const (
	busyFirstWait = 20 * time.Millisecond
	busyMaxWait   = 320 * time.Millisecond
)

// errBusy: the owner turned the request away as busy for longer than
// Config.BusyFor.
var errBusy = errors.New("the primary is busy")

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	g := t.g
	deadline := time.Now().Add(g.cfg.WaitFor)
	// shedAt is when a request kept waiting for a place (at the gateway,
	// or turned away by a busy owner) is shed: BusyFor after it first had
	// to wait. Zero while it has not.
	var shedAt time.Time
	var busyWait time.Duration
	shed := func() time.Time {
		if shedAt.IsZero() {
			shedAt = time.Now().Add(g.cfg.BusyFor)
		}
		return shedAt
	}
	for attempt := 0; ; attempt++ {
		owner, err := g.route(req.Context(), deadline)
		if err != nil {
			return nil, err
		}
		target, err := url.Parse(owner.Address)
		if err != nil || target.Host == "" {
			return nil, fmt.Errorf("owner %s has address %q: %w", owner.Owner, owner.Address, errNoOwner)
		}
		if !g.places.take(req.Context(), shed) {
			g.met.busy.Inc()
			return nil, fmt.Errorf("no place at the gateway within %v: %w", g.cfg.BusyFor, errBusy)
		}
		resp, retry, err := g.attempt(req, owner, target)
		g.places.give(errors.Is(err, errBusy), resp != nil)
		if !retry {
			return resp, err
		}
		switch {
		case !errors.Is(err, errBusy):
			shedAt, busyWait = time.Time{}, 0
		case time.Now().Before(shed()):
			// A busy primary is sent the request again once an attempt
			// comes back from it (a place may be free), or after a pause
			// that doubles (jittered): requests bouncing off a full queue
			// every few milliseconds cost the CPU the others needed.
			busyWait = min(max(2*busyWait, busyFirstWait), busyMaxWait)
			t := time.NewTimer(min(busyWait/2+time.Duration(mrand.Int64N(int64(busyWait))), time.Until(shedAt)))
			select {
			case <-g.freed:
			case <-t.C:
			case <-req.Context().Done():
			}
			t.Stop()
		default:
			return nil, fmt.Errorf("turned away for %v: %w", g.cfg.BusyFor, err)
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errNoOwner
			}
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err)
		}
		g.met.retries.Inc()
	}
}

// attempt sends the request to owner once. It reports whether to retry.
func (g *Gateway) attempt(req *http.Request, owner group.Entry, target *url.URL) (*http.Response, bool, error) {
	ctx, cancel := context.WithTimeout(req.Context(), g.cfg.Attempt)
	// A request waiting on an owner that is replaced (a paused primary) is
	// abandoned and retried on the new one: the interaction sequence
	// makes that safe even if the old owner applied it.
	stop := context.AfterFunc(g.tenureOf(owner), cancel)
	out := req.Clone(ctx)
	out.URL.Scheme, out.URL.Host, out.Host = target.Scheme, target.Host, target.Host
	out.Body, out.ContentLength = http.NoBody, 0
	if req.GetBody != nil && req.ContentLength > 0 {
		// A fresh reader of the buffered body (see ServeHTTP).
		out.Body, _ = req.GetBody()
		out.ContentLength = req.ContentLength
	}
	resp, err := g.tr.RoundTrip(out)
	stop()
	if err == nil {
		// Back from the owner: a request it turned away as busy may find
		// a place now.
		select {
		case g.freed <- struct{}{}:
		default:
		}
	}
	if err != nil {
		cancel()
		switch {
		case req.Context().Err() != nil:
			return nil, false, err // the client went away
		case unreachable(err):
			g.failed(owner, group.ReasonUnreachable)
		default:
			// Timed out, or abandoned because the owner changed.
			if cur, ok := g.owner(); ok && cur.Owner == owner.Owner && cur.Epoch == owner.Epoch {
				g.failed(owner, group.ReasonLease)
			}
		}
		g.log.Debug("attempt failed", "owner", owner.Owner, "epoch", owner.Epoch, "err", err)
		return nil, true, err
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		switch resp.Header.Get(wire.HeaderUnavailable) {
		case wire.UnavailableRetry:
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			return nil, true, fmt.Errorf("%s answered 503 %s", owner.Owner, wire.UnavailableRetry)
		case wire.UnavailableBusy:
			// A primary at its bound of requests in flight: alive, so
			// nothing is signalled; the request goes to it again after a
			// pause of a few milliseconds (jittered, so that the retries of
			// a burst do not arrive together), within the client's wait.
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			g.met.busy.Inc()
			return nil, true, fmt.Errorf("%s answered 503 %s: %w", owner.Owner, wire.UnavailableBusy, errBusy)
		case wire.UnavailableBroker:
			// The owner could not replicate the answer (NATS is electing a
			// leader, or restarting): nothing was applied, so the request is
			// retried after a pause, within the wait a client is promised.
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			sleep(req.Context(), 100*time.Millisecond)
			return nil, true, fmt.Errorf("%s answered 503 broker", owner.Owner)
		case wire.UnavailableBackup, wire.UnavailableDraining, wire.UnavailableLease:
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			var settled <-chan struct{}
			if resp.Header.Get(wire.HeaderUnavailable) != wire.UnavailableDraining {
				if f := g.failed(owner, group.ReasonLease); f != nil {
					// The owner may be one just promoted, whose claim the
					// gateway saw before it began to serve: it answers the
					// signal itself, and the request goes to it again at
					// once instead of waiting for a change that never comes.
					settled = f.done
				}
			}
			g.waitChange(req.Context(), owner, settled, time.Now().Add(g.cfg.Lease+g.cfg.Margin))
			return nil, true, fmt.Errorf("%s answered 503 %s", owner.Owner, resp.Header.Get(wire.HeaderUnavailable))
		}
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, false, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// unreachable reports an error that says the owner's process is gone: its
// host refused the connection (nothing listens), or reset or closed it
// mid-request (the process died with it open). With a single NATS server
// the backups confirm it and take over without waiting out the lease; a
// false alarm costs nothing, since they confirm first.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// owner returns the group's owner: the newer of what the monitor shows and
// what a failover reply named.
func (g *Gateway) owner() (group.Entry, bool) {
	e, ok := g.mon.Owner()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.learned.Epoch > e.Epoch {
		return g.learned, true
	}
	return e, ok
}

// route returns the owner to send a request to, waiting (until deadline)
// while there is none or a failover of it is in flight.
func (g *Gateway) route(ctx context.Context, deadline time.Time) (group.Entry, error) {
	for {
		e, ok := g.owner()
		if ok && !e.Released && e.Address != "" {
			g.mu.Lock()
			f := g.running[key(e)]
			g.mu.Unlock()
			if f == nil {
				return e, nil
			}
			// A failover of this owner is in flight: wait for it, but not
			// past a lease, then try the owner again; it may have renewed.
			select {
			case <-f.done:
				continue
			case <-time.After(g.cfg.Lease + g.cfg.Margin):
				return e, nil
			case <-ctx.Done():
				return e, ctx.Err()
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return e, fmt.Errorf("waited %v: %w", g.cfg.WaitFor, errNoOwner)
		}
		t := time.NewTimer(left)
		select {
		case <-g.mon.Changed():
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return e, ctx.Err()
		}
		t.Stop()
	}
}

// waitChange waits until the owner is no longer owner (at its epoch), or
// settled is closed (after a pause, so that an owner answering 503 is not
// asked in a tight loop), or until deadline.
func (g *Gateway) waitChange(ctx context.Context, owner group.Entry, settled <-chan struct{}, deadline time.Time) {
	for {
		cur, ok := g.owner()
		if !ok || cur.Owner != owner.Owner || cur.Epoch != owner.Epoch || cur.Released != owner.Released {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-g.mon.Changed():
		case <-settled:
			t.Stop()
			sleep(ctx, settledPause)
			return
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// settledPause is how long a request waits before it goes again to an
// owner that answered 503 and then confirmed, answering a failover signal,
// that it owns the group: long enough for a node promoted a moment ago to
// start serving, short beside a lease.
const settledPause = 5 * time.Millisecond

func key(e group.Entry) string { return fmt.Sprintf("%s@%d", e.Owner, e.Epoch) }

// failed starts a failover of owner, unless one is in flight, and returns
// it (nil when owner is known to be replaced already). It does not wait:
// requests wait in route.
func (g *Gateway) failed(owner group.Entry, reason string) *failover {
	k := key(owner)
	g.mu.Lock()
	if f, ok := g.running[k]; ok {
		g.mu.Unlock()
		return f
	}
	if g.learned.Epoch > owner.Epoch {
		g.mu.Unlock()
		return nil
	}
	f := &failover{done: make(chan struct{})}
	g.running[k] = f
	g.mu.Unlock()

	detected := time.Now()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.WaitFor)
		defer cancel()
		g.log.Warn("primary failing: signalling a failover", "owner", owner.Owner, "epoch", owner.Epoch, "reason", reason)
		g.met.signals.WithLabelValues(reason).Inc()
		f.rep, f.err = group.Signal(ctx, g.nc, g.cfg.Subjects, group.FailoverRequest{Group: g.cfg.Group, Failed: owner.Owner, Reason: reason})
		took := time.Since(detected)
		g.mu.Lock()
		if f.err == nil && f.rep.Epoch > g.learned.Epoch {
			g.learned = group.Entry{Epoch: f.rep.Epoch, Owner: f.rep.Node, Address: f.rep.Address}
		}
		delete(g.running, k)
		g.mu.Unlock()
		g.noteOwner() // the owner a reply named may be news
		close(f.done)
		switch {
		case f.err != nil:
			g.log.Error("failover failed", "owner", owner.Owner, "err", f.err)
		case f.rep.Epoch > owner.Epoch:
			g.met.promotionSeconds.Observe(took.Seconds())
			g.log.Info("failover done", "new_owner", f.rep.Node, "epoch", f.rep.Epoch, "took", took,
				"promoted_in", f.rep.Took, "fast_path", f.rep.FastPath, "sessions", f.rep.Sessions)
		default:
			g.log.Info("primary still owns the group", "owner", f.rep.Node, "epoch", f.rep.Epoch)
		}
	}()
	return f
}

// watchLease signals a failover when the owner's renewals stop for a lease
// plus the margin, so a failover starts even before a request notices.
func (g *Gateway) watchLease() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.Lease / 6)
	defer t.Stop()
	lastWarn := time.Time{}
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		st := g.mon.Status(3 * time.Second)
		if st.Exists && !st.Released && st.LeaseAge > g.cfg.Lease+g.cfg.Margin {
			e, _ := g.owner()
			if e.Epoch == st.Epoch {
				g.met.detectionSeconds.Observe(st.LeaseAge.Seconds())
				g.failed(e, group.ReasonLease)
			}
		}
		if st.Exists && st.Backups() == 0 && time.Since(lastWarn) > 30*time.Second {
			g.log.Warn("the group has no backup left: a failure of the primary would lose service", "owner", st.Owner)
			lastWarn = time.Now()
		}
	}
}

// checkHealth checks the owner's /healthz and signals a failover after
// several failures in a row.
func (g *Gateway) checkHealth() {
	defer g.wg.Done()
	if g.cfg.HealthEvery < 0 {
		return
	}
	client := &http.Client{Transport: g.tr, Timeout: max(g.cfg.HealthEvery, 200*time.Millisecond)}
	t := time.NewTicker(g.cfg.HealthEvery)
	defer t.Stop()
	fails, last := 0, ""
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		e, ok := g.owner()
		if !ok || e.Released || e.Address == "" {
			continue
		}
		if key(e) != last {
			fails, last = 0, key(e)
		}
		resp, err := client.Get(e.Address + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fails = 0
				continue
			}
		}
		fails++
		if fails >= g.cfg.HealthFails {
			reason := group.ReasonLease
			if err != nil && unreachable(err) {
				reason = group.ReasonUnreachable
			}
			g.failed(e, reason)
			fails = 0
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
