package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
)

// KeyPrefix starts the Redis key of every session.
const KeyPrefix = "understudy-bench:session:"

// server serves the demo application with its sessions in Redis: the
// session is read (GET) and materialized before each request, and written
// (SET, CBOR) after each interaction, before the answer. Nothing about a
// session stays in the process between requests.
type server struct {
	node   string
	app    string
	cookie string
	eng    *model.Engine
	rdb    *redis.Client
	secret []byte
	ttl    time.Duration
	epoch  func() uint64
	ready  func() bool // holds the group
	log    *slog.Logger
}

// errNoSession: Redis holds no session of this id.
var errNoSession = errors.New("no such session")

// Page is a page's JSON twin, as understudy's node writes it.
type pageJSON struct {
	*model.Page
	CSRF  string `json:"csrf,omitempty"`
	Stale bool   `json:"stale,omitempty"`
}

type messageJSON struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { s.status(w, r) })
	mux.HandleFunc("GET /understudy/status", s.status)
	mux.HandleFunc("GET /{$}", s.view)
	mux.HandleFunc("POST /{$}", s.submit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Understudy-Node", s.node)
		w.Header().Set("Understudy-Role", "primary")
		mux.ServeHTTP(w, r)
	})
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	ready := s.ready()
	w.Header().Set("Content-Type", "application/json")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"node": s.node, "role": "primary", "ready": ready, "reason": "redis baseline", "epoch": s.epoch()})
}

func key(id model.SessionID) string { return KeyPrefix + string(id) }

// load reads a session from Redis and materializes it.
func (s *server) load(ctx context.Context, id model.SessionID) (*model.Run, error) {
	data, err := s.rdb.Get(ctx, key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("redis get session %s: %w", id, err)
	}
	// The path the node restores by, with what Redis holds: a payload
	// neither sealed nor in a stream.
	return snapshot.Restore(ctx, s.eng, nil, snapshot.Stored{Meta: snapshot.Meta{Session: id}, Data: data})
}

// store writes a session to Redis; it returns once Redis has answered,
// which with appendfsync always is after the fsync.
func (s *server) store(ctx context.Context, run *model.Run) error {
	data, err := cbor.Marshal(run.Session())
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, key(run.ID()), data, s.ttl).Err(); err != nil {
		return fmt.Errorf("redis set session %s: %w", run.ID(), err)
	}
	return nil
}

func newID() model.SessionID {
	var b [16]byte
	rand.Read(b[:])
	return model.NewSessionID(b)
}

func (s *server) sessionID(r *http.Request) (model.SessionID, bool) {
	c, err := r.Cookie(s.cookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	id, err := model.ParseSessionID(c.Value)
	return id, err == nil
}

func (s *server) setCookie(w http.ResponseWriter, id model.SessionID) {
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: string(id), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// csrf is the session's CSRF token, made as understudy's node makes it.
func (s *server) csrf(id model.SessionID) string {
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte("understudy csrf "))
	mac.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

func (s *server) begin(ctx context.Context, id model.SessionID) (*model.Run, error) {
	return s.eng.Start(ctx, model.Begin{Session: id, App: s.app, Now: time.Now(), Node: s.node, Epoch: s.epoch()})
}

// view shows the session's current page, or a fresh application. As with
// understudy, a session exists only from its first interaction.
func (s *server) view(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := s.sessionID(r)
	if ok && r.URL.Query().Get("new") == "" {
		run, err := s.load(ctx, id)
		switch {
		case err == nil:
			s.page(w, r, http.StatusOK, run, false, nil)
			return
		case !errors.Is(err, errNoSession):
			s.fail(w, r, http.StatusInternalServerError, "", err)
			return
		}
	} else {
		id = newID()
		s.setCookie(w, id)
	}
	run, err := s.begin(ctx, id)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "", err)
		return
	}
	s.page(w, r, http.StatusOK, run, false, nil)
}

// submit applies one interaction: load, validate, advance, store, answer.
func (s *server) submit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "", err)
		return
	}
	seq, err := strconv.ParseUint(r.PostForm.Get("_seq"), 10, 64)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "", fmt.Errorf("_seq: %w", err))
		return
	}
	id, ok := s.sessionID(r)
	if !ok {
		id = newID()
	}
	run, err := s.load(ctx, id)
	created := false
	switch {
	case errors.Is(err, errNoSession) && seq == 0:
		if run, err = s.begin(ctx, id); err != nil {
			s.fail(w, r, http.StatusInternalServerError, "", err)
			return
		}
		created = true
	case errors.Is(err, errNoSession):
		s.setCookie(w, newID())
		s.fail(w, r, http.StatusGone, "", err)
		return
	case err != nil:
		s.fail(w, r, http.StatusServiceUnavailable, "redis", err)
		return
	}
	if !created && !hmac.Equal([]byte(r.PostForm.Get("_csrf")), []byte(s.csrf(id))) {
		s.fail(w, r, http.StatusForbidden, "", errors.New("CSRF token mismatch"))
		return
	}
	if created {
		s.setCookie(w, id)
	}
	next, err := s.eng.Submit(ctx, run, model.Input{Seq: seq, Values: r.PostForm, Now: time.Now(), Node: s.node, Epoch: s.epoch()})
	var bad *model.InvalidInputError
	switch {
	case errors.As(err, &bad):
		s.page(w, r, http.StatusUnprocessableEntity, run, false, bad)
		return
	case errors.Is(err, model.ErrStaleInteraction), errors.Is(err, model.ErrFinished):
		s.page(w, r, http.StatusOK, run, true, nil)
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, "", err)
		return
	}
	if err := s.store(ctx, next); err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "redis", err)
		return
	}
	s.page(w, r, http.StatusOK, next, false, nil)
}

// page writes the page the session shows as its JSON twin.
func (s *server) page(w http.ResponseWriter, r *http.Request, status int, run *model.Run, stale bool, bad *model.InvalidInputError) {
	pg, err := s.eng.Page(r.Context(), run)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "", err)
		return
	}
	if bad != nil {
		pg.Reject(bad)
	}
	h := w.Header()
	h.Set("Understudy-Seq", strconv.FormatUint(pg.Seq, 10))
	if stale {
		h.Set("Understudy-Stale", "1")
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(pageJSON{Page: pg, CSRF: s.csrf(run.ID()), Stale: stale})
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, status int, reason string, err error) {
	if status >= 500 {
		s.log.Error("request failed", "status", status, "err", err)
	}
	if reason != "" {
		w.Header().Set("Understudy-Unavailable", reason)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(messageJSON{Error: err.Error(), Reason: reason})
}
