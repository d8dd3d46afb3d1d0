package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"understudy/model"
	"understudy/pages"
	"understudy/publisher"
	"understudy/wire"
)

// Headers a node sets, for gateways and tests (see package wire).
const (
	HeaderNode        = wire.HeaderNode
	HeaderRole        = wire.HeaderRole
	HeaderEpoch       = wire.HeaderEpoch
	HeaderSeq         = wire.HeaderSeq
	HeaderStale       = wire.HeaderStale
	HeaderUnavailable = wire.HeaderUnavailable
	HeaderCSRF        = wire.HeaderCSRF
	HeaderRequest     = wire.HeaderRequest
)

// Reasons a node answers 503, in HeaderUnavailable (see package wire).
const (
	UnavailableBackup   = wire.UnavailableBackup
	UnavailableDraining = wire.UnavailableDraining
	UnavailableLease    = wire.UnavailableLease
	UnavailableBroker   = wire.UnavailableBroker
	UnavailableCapacity = wire.UnavailableCapacity
	UnavailableRetry    = wire.UnavailableRetry
	UnavailableBusy     = wire.UnavailableBusy
)

// Handler returns the node's HTTP handler: the application at /, the JSON
// twin of every page (Accept: application/json), /healthz, /readyz,
// /metrics and /understudy/status.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", n.met.handler())
	mux.HandleFunc("GET /understudy/status", n.statusz)
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(n.ui.CSS())
	})
	mux.HandleFunc("GET /{$}", n.view)
	mux.HandleFunc("POST /{$}", n.submit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set(HeaderNode, n.cfg.Node)
		if n.serving.Load() {
			h.Set(HeaderRole, "primary")
			h.Set(HeaderEpoch, strconv.FormatUint(n.epoch.Load(), 10))
		} else {
			h.Set(HeaderRole, "backup")
		}
		mux.ServeHTTP(w, r)
	})
}

// Form values a page's own forms send besides the answers: _seq (the
// interaction the page was rendered at), _csrf, and what the form asks
// for when it is not an answer: a step back, or a change from the check
// page (with the section to change).
const (
	formAction   = "_action"
	formChange   = "_change"
	actionBack   = "back"
	actionChange = "change"
)

// unavailable answers 503 with a reason a gateway can act on.
func (n *Node) unavailable(w http.ResponseWriter, r *http.Request, reason, msg string) {
	w.Header().Set(HeaderUnavailable, reason)
	w.Header().Set("Retry-After", "1")
	n.met.unavailable.WithLabelValues(reason).Inc()
	n.ui.Render(w, r, http.StatusServiceUnavailable, pages.View{Title: "Please try again in a moment", Message: msg, Reason: reason})
}

// admitted takes a place among the requests in flight (see admission),
// answering 503 busy when none comes free in time. Every true must be
// followed by n.admit.leave.
func (n *Node) admitted(w http.ResponseWriter, r *http.Request) bool {
	ok, waited := n.admit.enter(r.Context().Done())
	if waited > 0 {
		n.met.admissionSeconds.Observe(waited.Seconds())
	}
	if !ok {
		n.unavailable(w, r, UnavailableBusy, "We are very busy right now. Please try again in a moment.")
	}
	return ok
}

func (n *Node) fail(w http.ResponseWriter, r *http.Request, status int, title, msg string, restart bool) {
	n.ui.Render(w, r, status, pages.View{Title: title, Message: msg, Restart: restart, Reason: http.StatusText(status)})
}

// servingOrRefuse reports whether this node may serve the application now,
// answering 503 when it may not.
func (n *Node) servingOrRefuse(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case n.draining.Load():
		n.unavailable(w, r, UnavailableDraining, "This server is handing over to another one.")
	case !n.serving.Load():
		n.unavailable(w, r, UnavailableBackup, "This server is a backup.")
	case n.cfg.Replication != Off && !n.member.Valid():
		n.unavailable(w, r, UnavailableLease, "This server cannot confirm it is in charge right now.")
	default:
		return true
	}
	return false
}

// newID returns a fresh random session id.
func newID() model.SessionID {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return model.NewSessionID(b)
}

// firstID is the id of a session created by a first interaction without a
// cookie: derived from the gateway's request id (wire.HeaderRequest), so
// that every retry of the request finds the session its first attempt
// created, or fresh when the request came by no gateway.
func (n *Node) firstID(r *http.Request) model.SessionID {
	req := r.Header.Get(HeaderRequest)
	if req == "" {
		return newID()
	}
	mac := hmac.New(sha256.New, n.cfg.Secret)
	mac.Write([]byte("understudy first interaction "))
	mac.Write([]byte(req))
	return model.NewSessionID([16]byte(mac.Sum(nil)[:16]))
}

// sessionID reads the session cookie: ok is false without a cookie, err is
// set when the cookie holds something that is not a session id.
func (n *Node) sessionID(r *http.Request) (id model.SessionID, ok bool, err error) {
	c, cerr := r.Cookie(n.cfg.CookieName)
	if cerr != nil || c.Value == "" {
		return "", false, nil
	}
	id, err = model.ParseSessionID(c.Value)
	return id, err == nil, err
}

// setCookie gives the browser its session id. A GET gives a fresh browser a
// candidate id; the session exists only from its first interaction. A
// retried first interaction then finds the session it created.
func (n *Node) setCookie(w http.ResponseWriter, r *http.Request, id model.SessionID) {
	http.SetCookie(w, &http.Cookie{
		Name: n.cfg.CookieName, Value: string(id), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: n.cfg.TLSCert != "" || r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
}

// csrf is the session's CSRF token: a form from another site cannot carry
// it, since it is not in the cookie and not guessable from outside.
func (n *Node) csrf(id model.SessionID) string {
	mac := hmac.New(sha256.New, n.cfg.Secret)
	mac.Write([]byte("understudy csrf "))
	mac.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

func (n *Node) pageView(ctx context.Context, run *model.Run, stale bool) (pages.View, error) {
	pg, err := n.eng.Page(ctx, run)
	if err != nil {
		return pages.View{}, err
	}
	v := pages.View{Page: pg, CSRF: n.csrf(run.ID()), Stale: stale}
	if pg.Finished {
		v.Answers = n.eng.Answers(ctx, run)
	}
	return v, nil
}

// view shows the session's current page, or a fresh application.
func (n *Node) view(w http.ResponseWriter, r *http.Request) {
	if !n.servingOrRefuse(w, r) || !n.admitted(w, r) {
		return
	}
	defer n.admit.leave()
	ctx := r.Context()
	id, ok, _ := n.sessionID(r)
	if ok && r.URL.Query().Get("new") == "" {
		s, err := n.acquire(ctx, id, true)
		switch {
		case err == nil:
			defer s.mu.Unlock()
			s.last = time.Now()
			v, err := n.pageView(ctx, s.run, false)
			if err != nil {
				n.serverError(w, r, id, err)
				return
			}
			n.ui.Render(w, r, http.StatusOK, v)
			return
		case errors.Is(err, errEnded):
			n.ended(w, r)
			return
		case errors.Is(err, errQuarantined):
			n.quarantined(w, r, id)
			return
		case errors.Is(err, errStreamUnread):
			n.log.Warn("cannot read a session from the stream", "session", id, "err", err)
			n.unavailable(w, r, UnavailableBroker, "We could not load your application. Please try again.")
			return
		case !errors.Is(err, errNoSession):
			n.serverError(w, r, id, err)
			return
		}
		// A candidate id from an earlier GET: keep it.
	} else {
		id = newID()
		n.setCookie(w, r, id)
	}
	app := n.defaultApp()
	run, err := n.eng.Start(ctx, model.Begin{Session: id, App: app, Version: n.startVersion(app), Now: time.Now(), Node: n.cfg.Node, Epoch: n.epoch.Load()})
	if err != nil {
		n.serverError(w, r, id, err)
		return
	}
	v, err := n.pageView(ctx, run, false)
	if err != nil {
		n.serverError(w, r, id, err)
		return
	}
	n.ui.Render(w, r, http.StatusOK, v)
}

// defaultApp is the application a new session runs: the first registered.
func (n *Node) defaultApp() string {
	apps := n.eng.Registry().Apps()
	if n.cfg.App != "" || len(apps) == 0 {
		return n.cfg.App
	}
	return apps[0].Name()
}

// ended answers for a session that has ended, with a fresh cookie.
func (n *Node) ended(w http.ResponseWriter, r *http.Request) {
	n.met.interactions.WithLabelValues("expired").Inc()
	n.setCookie(w, r, newID())
	n.fail(w, r, http.StatusGone, "Your session has ended", "It was finished or unused for too long. You can start a new application.", true)
}

// quarantined answers for a session whose saved state cannot be restored
// (see errQuarantined): that user, and only that user, gets this page;
// the session's messages stay in the stream for an operator.
func (n *Node) quarantined(w http.ResponseWriter, r *http.Request, id model.SessionID) {
	n.met.interactions.WithLabelValues("quarantined").Inc()
	n.ui.Render(w, r, http.StatusInternalServerError, pages.View{
		Title:   "Your application cannot be restored",
		Message: "Its saved state is damaged, so it cannot be continued safely. It has been kept for our team to look at (reference " + string(id) + "). You can start a new application.",
		Reason:  ReasonQuarantined, Restart: true,
	})
}

// ReasonQuarantined is the JSON "reason" of the page a user gets when
// their session's saved state cannot be restored.
const ReasonQuarantined = "quarantined"

func (n *Node) serverError(w http.ResponseWriter, r *http.Request, id model.SessionID, err error) {
	n.log.Error("request failed", "session", id, "err", err)
	n.fail(w, r, http.StatusInternalServerError, "Something went wrong",
		"We could not show your application. Your answers so far are safe; please try again.", false)
}

// submit applies one interaction: validate, advance, replicate, answer.
func (n *Node) submit(w http.ResponseWriter, r *http.Request) {
	if !n.inflight.enter() {
		n.unavailable(w, r, UnavailableDraining, "This server is handing over to another one.")
		return
	}
	defer n.inflight.leave()
	if !n.servingOrRefuse(w, r) || !n.admitted(w, r) {
		return
	}
	defer n.admit.leave()
	start := time.Now()
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, n.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			n.met.interactions.WithLabelValues("too_large").Inc()
			n.fail(w, r, http.StatusRequestEntityTooLarge, "Too much data", "What you sent is larger than this application accepts.", false)
			return
		}
		n.fail(w, r, http.StatusBadRequest, "Bad request", "Your browser sent something this application cannot read.", false)
		return
	}
	seqText := r.PostForm.Get("_seq")
	if seqText == "" {
		seqText = r.Header.Get(HeaderSeq)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		n.fail(w, r, http.StatusBadRequest, "Bad request", "This form is missing its place in your application. Please reload the page.", false)
		return
	}
	id, ok, cookieErr := n.sessionID(r)
	switch {
	case cookieErr != nil:
		n.met.interactions.WithLabelValues("bad_session").Inc()
		n.log.Warn("malformed session cookie", "err", cookieErr, "client", clientAddr(r))
		n.setCookie(w, r, newID())
		n.fail(w, r, http.StatusBadRequest, "Your session could not be read", "Please start again.", true)
		return
	case !ok:
		// A client without a cookie from a GET: a retry of this request
		// must find the session this attempt creates.
		id = n.firstID(r)
	}

	s, created, err := n.acquireOrStart(ctx, r, id, seq)
	if err != nil {
		n.refuseStart(w, r, id, err)
		return
	}
	defer s.mu.Unlock()
	// Without a cookie there is no ambient credential another site could
	// ride on: a retried first interaction finds its session and needs no
	// token.
	if !created && ok && !n.checkCSRF(r, id) {
		n.met.interactions.WithLabelValues("csrf").Inc()
		n.log.Warn("CSRF token mismatch", "session", id, "client", clientAddr(r))
		n.fail(w, r, http.StatusForbidden, "This form cannot be accepted", "It did not come from this application. Please reload the page.", false)
		return
	}
	if created || !ok {
		n.setCookie(w, r, id)
	}

	// The interaction is applied, published and answered at the epoch the
	// session's memory is the truth at (the answer rule).
	epoch := s.epoch
	in := model.Input{Seq: seq, Values: r.PostForm, Now: time.Now(), Node: n.cfg.Node, Epoch: epoch}
	var next *model.Run
	switch r.PostForm.Get(formAction) {
	case actionBack:
		next, err = n.eng.Back(ctx, s.run, in)
	case actionChange:
		next, err = n.eng.Change(ctx, s.run, in, r.PostForm.Get(formChange))
	default:
		next, err = n.eng.Submit(ctx, s.run, in)
	}
	var bad *model.InvalidInputError
	switch {
	case errors.As(err, &bad):
		n.met.interactions.WithLabelValues("invalid").Inc()
		n.dropIfNew(s, created)
		v, perr := n.pageView(ctx, s.run, false)
		if perr != nil {
			n.serverError(w, r, id, perr)
			return
		}
		v.Page.Reject(bad)
		n.ui.Render(w, r, http.StatusUnprocessableEntity, v)
		return
	case errors.Is(err, model.ErrStaleInteraction), errors.Is(err, model.ErrFinished):
		// A back button, a double submit, or a retry of an interaction
		// that was applied: never apply it again; show where the session is.
		n.met.interactions.WithLabelValues("stale").Inc()
		if !n.answerable(w, r, s) {
			return
		}
		n.respond(w, r, s, true)
		return
	case errors.Is(err, model.ErrCannotMove):
		// A hand-made form: the page's own links never ask for this.
		n.met.interactions.WithLabelValues("cannot_move").Inc()
		n.dropIfNew(s, created)
		n.fail(w, r, http.StatusBadRequest, "That page cannot be shown", "Please use the links on the page.", false)
		return
	case err != nil:
		n.met.interactions.WithLabelValues("error").Inc()
		n.dropIfNew(s, created)
		n.serverError(w, r, id, err)
		return
	}
	next = n.migrate(ctx, next)

	if n.cfg.Bugs.AnswerBeforeAck {
		// The planted bug answers in full, flushed, before the publish.
		s.run = next
		answerNow(w, func(w http.ResponseWriter) { n.respond(w, r, s, false) })
		w = discard{w.Header()}
	}
	switch rep := n.replicate(ctx, s, next); rep.what {
	case diverged:
		s.run, s.epoch = rep.run, rep.epoch
		if n.answerable(w, r, s) {
			n.respond(w, r, s, true)
		}
		return
	case unreadable:
		n.sessions.remove(s)
		n.serverError(w, r, s.id, rep.err)
		return
	case fenced:
		n.sessions.remove(s)
		n.unavailable(w, r, UnavailableLease, "This server is no longer in charge of your application.")
		return
	case notStored:
		n.dropIfNew(s, created)
		n.unavailable(w, r, UnavailableBroker, "We could not save your answer. Please try again.")
		return
	}
	// Stored: the session's memory is the acknowledged state whether or
	// not it may be answered, so that a retry is stale and never applied
	// again.
	refused := !n.mayAnswer(epoch)
	if !refused || !n.cfg.Bugs.ForgetAfterRefusal {
		s.run, s.last = next, time.Now()
		if next.Finished() && s.finished.IsZero() {
			s.finished = s.last
		}
	}
	if refused {
		n.refuseAnswer(w, r, s, epoch)
		return
	}
	n.met.interactions.WithLabelValues("ok").Inc()
	n.met.interactionSeconds.Observe(time.Since(start).Seconds())
	n.log.Debug("interaction", "session", id, "seq", next.Seq(), "took", time.Since(start))
	n.respond(w, r, s, false)
}

// replication is what became of an interaction's publish.
type replication int

const (
	stored     replication = iota // acknowledged (or not replicated at all: Off)
	diverged                      // an earlier attempt landed: the stream's state is the session's
	unreadable                    // diverged, and the stream's state does not restore
	fenced                        // another node owns the session
	notStored                     // the broker did not take it: nothing was applied
)

// replicated is the outcome of replicate: for diverged, the session as
// the stream holds it and the epoch it was stored at; for unreadable and
// notStored, why.
type replicated struct {
	what  replication
	run   *model.Run
	epoch uint64
	err   error
}

// replicate publishes the new state of session s and says what became of
// it; the caller answers. It counts and logs what it saw.
func (n *Node) replicate(ctx context.Context, s *session, next *model.Run) replicated {
	switch n.cfg.Replication {
	case Off:
		return replicated{what: stored}
	case Async:
		if err := n.pub.PublishAsync(ctx, next.Session()); err != nil {
			return replicated{what: notStored, err: err}
		}
		return replicated{what: stored}
	}
	n.fault("before-publish")
	t0 := time.Now()
	ack, err := n.pub.Publish(ctx, next.Session())
	n.met.publishSeconds.Observe(time.Since(t0).Seconds())
	var div *publisher.DivergedError
	switch {
	case err == nil:
		if ack.Over != 0 {
			n.met.fencedOver.Inc()
		}
	case errors.As(err, &div):
		// An earlier attempt of this node's landed after all: the session
		// follows the stream. The submission is not applied again.
		run, merr := n.materialize(ctx, div.Stored)
		if merr != nil {
			return replicated{what: unreadable, err: merr}
		}
		n.met.interactions.WithLabelValues("diverged").Inc()
		return replicated{what: diverged, run: run, epoch: div.Stored.Epoch}
	case errors.Is(err, publisher.ErrFenced):
		n.met.fenced.Inc()
		n.log.Error("session fenced: another node owns it", "session", s.id, "err", err)
		return replicated{what: fenced, err: err}
	default:
		n.met.interactions.WithLabelValues("not_replicated").Inc()
		n.log.Warn("interaction not replicated", "session", s.id, "seq", next.Seq(), "err", err)
		return replicated{what: notStored, err: err}
	}
	n.met.snapshotBytes.Observe(float64(ack.Bytes))
	n.fault("after-publish")
	return replicated{what: stored}
}

// answerable applies the answer rule to what session s holds in memory,
// answering 503 when it may not be shown.
func (n *Node) answerable(w http.ResponseWriter, r *http.Request, s *session) bool {
	if n.mayAnswer(s.epoch) {
		return true
	}
	n.refuseAnswer(w, r, s, s.epoch)
	return false
}

// refuseAnswer answers 503 for an interaction of s stored at epoch that
// the answer rule does not let this node answer. A node whose lease
// lapsed may already have been replaced: the new primary answers the
// retry. A node that is the primary of a later epoch answers the retry
// itself, once it has loaded the session again from its copy.
func (n *Node) refuseAnswer(w http.ResponseWriter, r *http.Request, s *session, epoch uint64) {
	if n.leaseValid() && epoch != n.epoch.Load() {
		n.log.Info("not answering an interaction applied under an earlier epoch", "session", s.id, "applied_epoch", epoch, "epoch", n.epoch.Load())
		n.unavailable(w, r, UnavailableRetry, "Please try again.")
		return
	}
	n.unavailable(w, r, UnavailableLease, "This server cannot confirm it is in charge right now.")
}

// answerNow sends what write writes as a complete response (with its
// length) and flushes it, for the planted bug that answers before the ack.
func answerNow(w http.ResponseWriter, write func(http.ResponseWriter)) {
	buf := &buffered{h: http.Header{}, code: http.StatusOK}
	write(buf)
	for k, v := range buf.h {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(buf.b.Len()))
	w.WriteHeader(buf.code)
	w.Write(buf.b.Bytes())
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

type buffered struct {
	h    http.Header
	code int
	b    bytes.Buffer
}

func (b *buffered) Header() http.Header         { return b.h }
func (b *buffered) Write(p []byte) (int, error) { return b.b.Write(p) }
func (b *buffered) WriteHeader(code int)        { b.code = code }

// discard is a ResponseWriter that writes nowhere: what a planted bug that
// answered already writes afterwards.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h.Clone() }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

func (n *Node) dropIfNew(s *session, created bool) {
	if created {
		n.sessions.remove(s)
	}
}

func (n *Node) respond(w http.ResponseWriter, r *http.Request, s *session, stale bool) {
	v, err := n.pageView(r.Context(), s.run, stale)
	if err != nil {
		n.serverError(w, r, s.id, err)
		return
	}
	n.ui.Render(w, r, http.StatusOK, v)
}

func (n *Node) checkCSRF(r *http.Request, id model.SessionID) bool {
	got := r.PostForm.Get("_csrf")
	if got == "" {
		got = r.Header.Get(HeaderCSRF)
	}
	return hmac.Equal([]byte(got), []byte(n.csrf(id)))
}

// errStart* say why a new session was refused.
var (
	errCapacity = errors.New("session cap reached")
	errRate     = errors.New("too many new sessions from this client")
	errExpired  = errors.New("session expired")
)

// acquireOrStart returns the session locked, starting it when the
// interaction is a session's first (sequence 0) and it does not exist yet.
func (n *Node) acquireOrStart(ctx context.Context, r *http.Request, id model.SessionID, seq uint64) (*session, bool, error) {
	s, err := n.acquire(ctx, id, seq != 0)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, errNoSession) {
		return nil, false, err
	}
	if seq != 0 || errors.Is(err, errEnded) {
		return nil, false, errExpired
	}
	if n.liveSessions() >= n.cfg.MaxSessions {
		return nil, false, errCapacity
	}
	if !n.limiter.allow(clientAddr(r), time.Now()) {
		return nil, false, errRate
	}
	epoch := n.epoch.Load()
	app := n.defaultApp()
	run, err := n.eng.Start(ctx, model.Begin{Session: id, App: app, Version: n.startVersion(app), Now: time.Now(), Node: n.cfg.Node, Epoch: epoch})
	if err != nil {
		return nil, false, err
	}
	for {
		s = n.sessions.get(id, true)
		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			continue
		}
		if s.run != nil {
			return s, false, nil // a concurrent first interaction created it
		}
		s.run, s.epoch, s.last = run, epoch, time.Now()
		return s, true, nil
	}
}

func (n *Node) refuseStart(w http.ResponseWriter, r *http.Request, id model.SessionID, err error) {
	switch {
	case errors.Is(err, errExpired):
		n.ended(w, r)
	case errors.Is(err, errQuarantined):
		n.quarantined(w, r, id)
	case errors.Is(err, errStreamUnread):
		n.log.Warn("cannot read a session from the stream", "session", id, "err", err)
		n.unavailable(w, r, UnavailableBroker, "We could not load your application. Please try again.")
	case errors.Is(err, errCapacity):
		n.unavailable(w, r, UnavailableCapacity, "We are very busy right now. Please try again in a few minutes.")
	case errors.Is(err, errRate):
		n.met.interactions.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", "30")
		n.fail(w, r, http.StatusTooManyRequests, "Too many new applications", "Please wait a little before starting another one.", false)
	default:
		n.serverError(w, r, id, err)
	}
}

func (n *Node) liveSessions() int {
	live := n.sessions.len()
	if n.sub != nil {
		live = max(live, n.sub.Len())
	}
	return live
}

func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
}

// readyz is ready when the node is connected and, as a primary, holds a
// valid lease, or, as a hot backup, has caught up with the stream.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	ready, why := n.ready()
	w.Header().Set("Content-Type", "application/json")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": ready, "reason": why})
}

func (n *Node) ready() (bool, string) {
	switch {
	case !n.started.Load():
		if j := n.joining.Load(); j != nil {
			return false, *j
		}
		return false, "starting"
	case !n.nc.IsConnected() || !n.leaseNC.IsConnected():
		return false, "disconnected from NATS"
	case n.draining.Load():
		return false, "handing over"
	case n.serving.Load():
		if n.cfg.Replication != Off && !n.member.Valid() {
			return false, "primary without a valid lease"
		}
		return true, "primary"
	case n.sub != nil && !n.sub.CaughtUp():
		return false, "catching up"
	}
	return true, "backup"
}

// Status describes the node for operators.
type Status struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	Epoch    uint64 `json:"epoch"`
	Ready    bool   `json:"ready"`
	Reason   string `json:"reason"`
	Sessions int    `json:"sessions"`
	Held     int    `json:"held"`
	Lag      uint64 `json:"lag"`
	Lease    bool   `json:"lease_valid"`
	// Copy is what the node's copy of the stream does: "consuming", or
	// "paused" while the node is the primary (its publisher keeps it);
	// empty for a cold standby, which holds none.
	Copy string `json:"copy,omitempty"`
	// Apps are the application versions this node can materialize;
	// MemberApps what each live member of the group announces it can,
	// as this node hears it (once it has listened long enough to know):
	// sessions move only to versions all of them hold (see upgrade.go).
	Apps       []string            `json:"apps"`
	MemberApps map[string][]string `json:"member_apps,omitempty"`
}

func (n *Node) status() Status {
	ready, why := n.ready()
	st := Status{Node: n.cfg.Node, Role: "backup", Ready: ready, Reason: why, Sessions: n.sessions.len(), Apps: n.eng.Registry().Keys()}
	if n.serving.Load() {
		st.Role, st.Epoch = "primary", n.epoch.Load()
	}
	if !n.started.Load() {
		return st // the parts below are being set up
	}
	if n.sub != nil {
		st.Held, st.Lag, st.Copy = n.sub.Len(), n.sub.Lag(), "consuming"
		if n.sub.Paused() {
			st.Copy = "paused"
		}
	}
	st.Lease = n.member.Valid()
	if m := n.members(); m.Known {
		st.MemberApps = m.Members
	}
	return st
}

func (n *Node) statusz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n.status())
}
