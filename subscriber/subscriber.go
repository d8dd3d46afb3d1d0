package subscriber

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/model"
	"understudy/snapshot"
)

const (
	// consumeRetryWait spaces attempts after the consumer's iterator
	// fails, so a persistent failure does not spin.
	consumeRetryWait = 100 * time.Millisecond

	// idleWait is how long the consumer waits for a message before it
	// looks at the stream itself.
	idleWait = 250 * time.Millisecond

	// catchUpStall is how long a catch-up's first pass may deliver nothing
	// before it counts as stalled: the server may have skipped the rest
	// (see catchup.go), and the catch-up reads what it was not given from
	// the stream leader. Under load a pass pauses for longer than idleWait
	// while it still goes on: taken for stalled after 250 ms, a chaos run
	// read 73,934 of 76,925 sessions one by one, for 1 min 41 s.
	catchUpStall = 2 * time.Second

	// stallCheck spaces the checks of a silent consumer against the
	// stream (see idle).
	stallCheck = time.Second

	// verifyRetryWait spaces attempts to verify a catch-up that failed.
	verifyRetryWait = time.Second

	// drainPoll is how often DrainTo asks the stream leader whether
	// anything at or below its target is left, while the consumer is idle.
	drainPoll = 20 * time.Millisecond

	// drainStall is how long the consumer may hand over nothing while the
	// stream leader holds a message a drain waits for, before DrainTo
	// reads the messages itself. A consumer whose server died resets
	// itself inside its iterator, with a backoff of 1, 2, 4, 8 s and
	// more, during which nothing else of the subscriber runs: a backup
	// promoting after a NATS server and then the primary were killed
	// waited out every attempt of its takeover (a CI run, 14 s and more).
	// A consumer that works delivers within milliseconds.
	drainStall = 300 * time.Millisecond

	// deleteTimeout bounds the best-effort deletion of a consumer.
	deleteTimeout = 2 * time.Second

	// pullBatch is how many messages the consumer asks the server for at
	// once, by count: a byte budget makes nats-server skip messages of a
	// catch-up (see catchup.go).
	pullBatch = 1000
)

// Subscriber is a backup's consumer of the session stream: it holds the
// newest valid snapshot of every session. New does no I/O; Start creates
// the consumer and runs it in a goroutine of its own; Close stops it.
// All methods are safe for concurrent use.
type Subscriber struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    Config
	log    *slog.Logger
	reader *Reader

	mu    sync.RWMutex // guards store
	store *store

	processed atomic.Uint64 // highest stream sequence handled
	lag       atomic.Uint64 // NumPending of the last message
	moved     atomic.Int64  // unix nanoseconds of the last message handled

	lastStallCheck time.Time // owned by the consumer's goroutine
	caughtUp       atomic.Bool
	progress       notifier // broadcast after each message and on close

	life    sync.Mutex // guards the fields below
	state   lifeState
	cancel  context.CancelFunc        // the consumer's goroutine
	iter    jetstream.MessagesContext // the current consumer's; resume replaces both
	cons    jetstream.Consumer
	done    chan struct{} // closed when the consumer's goroutine returns
	started time.Time

	resolve      chan struct{} // Kick's, buffered one deep
	stopResolver context.CancelFunc
	resolverDone chan struct{}
}

type lifeState uint8

const (
	stateNew lifeState = iota
	stateRunning
	statePaused // no consumer; the store and the resolver go on
	stateClosed
)

// New returns a Subscriber of stream (the session stream, as returned by
// broker.EnsureStream). It does no I/O; a Config that Validate rejects
// makes Start fail.
func New(js jetstream.JetStream, stream jetstream.Stream, cfg Config) *Subscriber {
	c := cfg.withDefaults()
	return &Subscriber{
		js:     js,
		stream: stream,
		cfg:    c,
		log:    c.Logger,
		reader: NewReader(stream, cfg),
		store:  newStore(c.Fence, c.MaxEnded, c.Bugs),

		resolve: make(chan struct{}, 1),
	}
}

// Start creates an ordered consumer on the session stream that delivers
// first the newest message of every session, then every new message, and
// consumes it in a goroutine until Pause or Close. It returns once the
// consumer exists; WaitCaughtUp waits for the catch-up.
func (s *Subscriber) Start(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	s.life.Lock()
	defer s.life.Unlock()
	switch s.state {
	case stateRunning, statePaused:
		return ErrStarted
	case stateClosed:
		return ErrClosed
	}
	if err := s.startConsumer(ctx); err != nil {
		return err
	}
	lifeCtx, stop := context.WithCancel(context.Background())
	s.state, s.stopResolver, s.resolverDone = stateRunning, stop, make(chan struct{})
	go s.resolver(lifeCtx, s.resolverDone)
	return nil
}

// startConsumer creates the consumer and its goroutine: a catch-up of
// each session's newest message, then every new one. The caller holds
// s.life.
func (s *Subscriber) startConsumer(ctx context.Context) error {
	name := s.stream.CachedInfo().Config.Name
	start := time.Now()
	cons, err := s.js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.cfg.Subjects.SessionFilter()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("stream %s: create consumer: %w", name, err)
	}
	info := cons.CachedInfo()
	// An empty stream (or filter) is caught up at once: no message will
	// ever say "nothing pending".
	var cu *catchUp
	if info.NumPending > 0 {
		// Read after the consumer exists, so that its first pass is at or
		// below the last sequence read.
		sp, err := readStartPoint(ctx, s.stream)
		if err != nil {
			s.deleteConsumer(name, info.Name)
			return fmt.Errorf("stream %s: %w", name, err)
		}
		cu = &catchUp{start: sp, seen: newSubjectSet(), last: time.Now()}
	}
	iter, err := cons.Messages(s.pullOpts()...)
	if err != nil {
		s.deleteConsumer(name, info.Name)
		return fmt.Errorf("stream %s: consume: %w", name, err)
	}
	s.caughtUp.Store(cu == nil)
	s.lag.Store(info.NumPending)
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel, s.iter, s.cons, s.done, s.started = cancel, iter, cons, make(chan struct{}), start
	s.log.Info("subscriber started", "stream", name, "pending", info.NumPending)
	go s.run(runCtx, iter, cu, s.done)
	return nil
}

// Pause stops consuming and deletes the consumer, keeping what is held: a
// primary needs no copy of its own snapshots from the server, since its
// publisher hands each one it stored to Own. Lookup, Get, Range, Take and
// the judging of held snapshots by new claims (Kick) go on; DrainTo
// returns ErrPaused. Resume consumes again. Pause returns once the
// consumer's goroutine has stopped, or ctx ends.
func (s *Subscriber) Pause(ctx context.Context) error {
	s.life.Lock()
	switch s.state {
	case statePaused:
		s.life.Unlock()
		return nil
	case stateNew:
		s.life.Unlock()
		return ErrNotStarted
	case stateClosed:
		s.life.Unlock()
		return ErrClosed
	}
	s.cancel()
	s.iter.Stop()
	s.state = statePaused
	done, cons := s.done, s.cons
	s.life.Unlock()
	s.lag.Store(0)
	s.progress.broadcast()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("pause subscriber: %w", ctx.Err())
	}
	if info := cons.CachedInfo(); info != nil {
		s.deleteConsumer(s.stream.CachedInfo().Config.Name, info.Name)
	}
	s.log.Info("subscriber paused", "sessions", s.Len(), "stream_seq", s.Processed())
	return nil
}

// Resume consumes again after Pause, with a catch-up as Start makes one:
// each session's newest message, then every new one. What the catch-up
// brings that is not newer than what is held changes nothing (the store
// compares stream sequences). CaughtUp is false until the catch-up is
// over. Resume of a running Subscriber does nothing.
func (s *Subscriber) Resume(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	switch s.state {
	case stateRunning:
		return nil
	case stateNew:
		return ErrNotStarted
	case stateClosed:
		return ErrClosed
	}
	if err := s.startConsumer(ctx); err != nil {
		return err
	}
	s.state = stateRunning
	return nil
}

// Paused reports whether the Subscriber is paused.
func (s *Subscriber) Paused() bool {
	s.life.Lock()
	defer s.life.Unlock()
	return s.state == statePaused
}

// Own holds a message this node stored itself (its publisher's ack says
// where), as if the consumer had delivered it: a paused Subscriber stays
// the truth of every session the node writes, tombstones included. data
// is copied. A message that is not newer than what is held changes
// nothing, so Own and a delivery of the same message may come in either
// order.
func (s *Subscriber) Own(st snapshot.Stored) {
	s.mu.Lock()
	out, err := s.store.apply(st.Meta, st.Data, nil)
	s.mu.Unlock()
	if out != applied && out != ended && out != older {
		s.log.Warn("own snapshot not held", "session", st.Session, "stream_seq", st.StreamSeq, "outcome", out, "err", err)
	}
}

// catchUp is the state of a catch-up, owned by the consumer's goroutine.
type catchUp struct {
	start   startPoint
	seen    *subjectSet // subjects of the messages at or below start.lastSeq
	retryAt time.Time   // after a failed verification
	last    time.Time   // when the pass last delivered a message (or began)

	// consumer is the server-side consumer that delivered the pass's first
	// message. Another one means nats.go's ordered consumer reset itself
	// (its server died, or the consumer was lost): it goes on by stream
	// sequence from the last message delivered, which in a pass of each
	// session's newest message replays every older version the stream
	// keeps after it (up to its history, 16, per session): in a chaos run
	// a backup restarted a second before a NATS restart had not caught up
	// two minutes later, the stream 1.8 million messages long. The pass
	// is started again instead.
	consumer string
	reset    bool // a message came from another consumer than the pass's
}

func (s *Subscriber) pullOpts() []jetstream.PullMessagesOpt {
	if s.cfg.pullBatch > 0 {
		return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(s.cfg.pullBatch)}
	}
	return pullOpts(s.cfg.pullMaxBytes)
}

// pullOpts pulls by count, unless a test asks for a byte budget.
func pullOpts(maxBytes int) []jetstream.PullMessagesOpt {
	if maxBytes > 0 {
		return []jetstream.PullMessagesOpt{jetstream.PullMaxBytes(maxBytes)}
	}
	return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(pullBatch)}
}

// Close stops the consumer and waits until its goroutine has returned, or
// ctx ends. What is held stays readable.
func (s *Subscriber) Close(ctx context.Context) error {
	s.life.Lock()
	state, done, resolverDone, cons := s.state, s.done, s.resolverDone, s.cons
	if state == stateRunning {
		s.cancel()
		s.iter.Stop()
	}
	if state == stateRunning || state == statePaused {
		s.stopResolver()
	}
	s.state = stateClosed
	s.life.Unlock()
	s.progress.broadcast()
	var wait []chan struct{}
	switch state {
	case stateRunning:
		wait = []chan struct{}{done, resolverDone}
	case statePaused:
		wait = []chan struct{}{resolverDone}
	default:
		return nil
	}
	for _, d := range wait {
		select {
		case <-d:
		case <-ctx.Done():
			return fmt.Errorf("close subscriber: %w", ctx.Err())
		}
	}
	if state != stateRunning {
		return nil
	}
	// The server would remove the consumer after its inactivity threshold;
	// removing it now frees its memory at once. The ordered consumer
	// recreates itself under a new name after a reset: take the current.
	s.life.Lock()
	cons = s.cons
	s.life.Unlock()
	if info := cons.CachedInfo(); info != nil {
		s.deleteConsumer(s.stream.CachedInfo().Config.Name, info.Name)
	}
	return nil
}

func (s *Subscriber) deleteConsumer(stream, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("delete consumer", "stream", stream, "consumer", name, "err", err)
	}
}

// run consumes until the iterator is stopped. cu is the catch-up in
// progress, nil once caught up.
func (s *Subscriber) run(ctx context.Context, iter jetstream.MessagesContext, cu *catchUp, done chan struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		msg, err := iter.Next(jetstream.NextMaxWait(idleWait))
		switch {
		case err == nil:
			seq := s.handle(ctx, msg, cu)
			switch {
			case cu != nil && (s.lag.Load() == 0 || seq >= cu.start.lastSeq):
				cu, iter = s.finishCatchUp(ctx, cu, iter)
			case cu != nil && cu.reset:
				iter = s.passAgain(ctx, cu, iter)
			}
		case errors.Is(err, nats.ErrTimeout):
			cu, iter = s.idle(ctx, cu, iter)
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return
		default:
			s.log.Warn("session stream consumer", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(consumeRetryWait):
			}
		}
	}
}

// handle applies one message from the consumer and returns its stream
// sequence.
func (s *Subscriber) handle(ctx context.Context, msg jetstream.Msg, cu *catchUp) uint64 {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to apply, no sequence to count.
		s.log.Warn("session stream message without metadata", "subject", trunc(msg.Subject()), "err", err)
		return 0
	}
	if cu != nil {
		cu.last = time.Now()
		if md.Sequence.Stream <= cu.start.lastSeq {
			cu.seen.add(msg.Subject())
		}
		switch {
		case cu.consumer == "":
			cu.consumer = md.Consumer
		case md.Consumer != cu.consumer:
			cu.reset = true
		}
	}
	m, perr := snapshot.ParseMeta(s.cfg.Subjects, s.cfg.Sealer, msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
	s.apply(ctx, msg.Subject(), md.Sequence.Stream, m, msg.Data(), perr)
	s.advance(md.Sequence.Stream, md.NumPending)
	if s.cfg.afterHandle != nil {
		s.cfg.afterHandle(s, md.Sequence.Stream)
	}
	return md.Sequence.Stream
}

// apply takes one session message at stream sequence seq, delivered by the
// consumer or read by a drain: m and perr are what snapshot.ParseMeta
// returned for it.
func (s *Subscriber) apply(ctx context.Context, subject string, seq uint64, m snapshot.Meta, data []byte, perr error) {
	s.mu.Lock()
	out, qerr := s.store.apply(m, data, perr)
	s.mu.Unlock()
	switch out {
	case badSubject:
		s.log.Warn("message on the session stream is not a session's", "subject", trunc(subject), "stream_seq", seq, "err", qerr)
	case quarantined:
		s.quarantined(m.Session, seq, qerr)
	case fenced:
		s.log.Debug("fenced snapshot ignored", "session", m.Session, "stream_seq", m.StreamSeq, "epoch", m.Epoch, "node", m.Node)
	case fencedGap:
		s.fillGap(ctx, m)
	case ended:
		s.sessionEnded(m)
	}
}

// sessionEnded passes a tombstone the copy took on to Config.OnEnded.
func (s *Subscriber) sessionEnded(m snapshot.Meta) {
	if s.cfg.OnEnded != nil {
		s.cfg.OnEnded(m)
	}
}

// idle runs when no message came for idleWait.
func (s *Subscriber) idle(ctx context.Context, cu *catchUp, iter jetstream.MessagesContext) (*catchUp, jetstream.MessagesContext) {
	if cu != nil {
		if time.Since(cu.last) < catchUpStall {
			return cu, iter // a pause in a pass that goes on
		}
		// A stalled catch-up: it may be over with a pending count that
		// never reaches zero, or the server may have skipped the rest.
		return s.finishCatchUp(ctx, cu, iter)
	}
	if s.lag.Load() == 0 {
		// Nothing pending, by the last message's count. A consumer whose
		// server died can stay silent without resetting itself: every few
		// idle periods, ask the stream leader whether it holds a session
		// message after the last one handled, and if so start a consumer
		// from there.
		if time.Since(s.lastStallCheck) < stallCheck {
			return nil, iter
		}
		s.lastStallCheck = time.Now()
		next, err := nextAfter(ctx, s.stream, s.cfg.Subjects.SessionFilter(), s.Processed())
		if err != nil || next == nil {
			return nil, iter
		}
		s.log.Warn("consumer silent while the stream holds newer messages: recreating it", "stream_seq", s.Processed(), "next", next.Sequence)
		return nil, s.resume(ctx, iter)
	}
	// The server says messages are pending, but none came. After a
	// catch-up every message is delivered, so if the stream holds none
	// after the last one handled, the count is wrong (a message was
	// skipped and still counts as pending). A new consumer counts right.
	next, err := nextAfter(ctx, s.stream, s.cfg.Subjects.SessionFilter(), s.Processed())
	if err != nil || next != nil {
		return nil, iter
	}
	s.log.Warn("consumer counts pending messages the stream does not hold: recreating it", "pending", s.lag.Load(), "stream_seq", s.Processed())
	return nil, s.resume(ctx, iter)
}

// finishCatchUp ends a catch-up whose first pass is over (or stalled): it
// checks that it was given every subject the stream held when it started,
// reads any it was not given from the stream leader, and marks the
// subscriber caught up. It returns the catch-up still in progress (nil
// once done) and the iterator to go on with.
func (s *Subscriber) finishCatchUp(ctx context.Context, cu *catchUp, iter jetstream.MessagesContext) (*catchUp, jetstream.MessagesContext) {
	if time.Now().Before(cu.retryAt) {
		return cu, iter
	}
	missing, err := missingSubjects(ctx, s.stream, s.cfg.Subjects.SessionFilter(), cu.seen, cu.start.subjects)
	if err == nil && len(missing) > 0 {
		s.log.Warn("catch-up was not given every session: reading them from the stream leader", "missing", len(missing), "subjects", cu.start.subjects)
		err = s.readMissing(ctx, missing, cu.seen)
		if err == nil {
			// Its pending count is off by the messages it skipped.
			iter = s.resume(ctx, iter)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("verify catch-up", "err", err)
		}
		cu.retryAt = time.Now().Add(verifyRetryWait)
		return cu, iter
	}
	s.caughtUp.Store(true)
	s.life.Lock()
	took := time.Since(s.started)
	s.life.Unlock()
	s.log.Info("subscriber caught up", "sessions", s.Len(), "held_bytes", s.HeldBytes(), "stream_seq", s.Processed(), "took", took)
	s.progress.broadcast()
	return nil, iter
}

// missingReaders bounds the reads from the stream leader that a catch-up
// makes at once for the sessions it was not given. Under load the server
// can skip most of a first pass (tens of thousands of sessions): read one
// at a time, a backup then took minutes to be ready.
const missingReaders = 16

// readMissing reads the newest valid snapshot of each subject from the
// stream leader, as if its message had been delivered, a few at a time.
// Each subject read is added to seen, so that a verification tried again
// after a failed read reads only what is still missing.
func (s *Subscriber) readMissing(ctx context.Context, subjects []string, seen *subjectSet) error {
	work := make(chan string)
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		done  []string
	)
	for range min(missingReaders, len(subjects)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for subject := range work {
				if err := s.readOne(ctx, subject); err != nil {
					errMu.Lock()
					first = cmp.Or(first, err)
					errMu.Unlock()
					continue
				}
				errMu.Lock()
				done = append(done, subject)
				errMu.Unlock()
			}
		}()
	}
	for _, subject := range subjects {
		if ctx.Err() != nil {
			break
		}
		work <- subject
	}
	close(work)
	wg.Wait()
	for _, subject := range done {
		seen.add(subject)
	}
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// readOne reads one missing subject's session from the stream leader. It
// returns only errors that may pass (a timeout): a subject that is no
// session's is counted and skipped.
func (s *Subscriber) readOne(ctx context.Context, subject string) error {
	raw, err := s.cfg.Subjects.SessionID(subject)
	var id model.SessionID
	if err == nil {
		id, err = model.ParseSessionID(raw)
	}
	if err != nil {
		s.mu.Lock()
		s.store.counts.badSubjects++
		s.mu.Unlock()
		s.log.Warn("subject on the session stream is not a session's", "subject", trunc(subject), "err", err)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
	st, err := snapshot.Latest(rctx, s.stream, s.cfg.Subjects, s.cfg.Sealer, id, s.cfg.Fence)
	cancel()
	if transient(err) {
		return fmt.Errorf("read session %s: %w", id, err)
	}
	s.mu.Lock()
	out, qerr := s.store.applyRead(id, 0, st, err)
	s.mu.Unlock()
	if out == quarantined {
		s.quarantined(id, st.StreamSeq, qerr)
	}
	return nil
}

// resume replaces the consumer by one that starts after the last message
// handled and delivers every message from there. If that fails it keeps
// the current one, whose pending count is wrong, nothing else.
func (s *Subscriber) resume(ctx context.Context, iter jetstream.MessagesContext) jetstream.MessagesContext {
	next, _ := s.replace(ctx, iter, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.cfg.Subjects.SessionFilter()},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    s.Processed() + 1,
	})
	return next
}

// passAgain starts a catch-up's pass of each session's newest message
// again, on a new consumer, after the ordered consumer reset itself in
// its middle (see catchUp.consumer). What the first pass applied stays:
// the store takes each message at most once. If the new consumer cannot
// be made, the pass goes on as the reset left it, slower, nothing else.
func (s *Subscriber) passAgain(ctx context.Context, cu *catchUp, iter jetstream.MessagesContext) jetstream.MessagesContext {
	s.log.Warn("catch-up's consumer reset itself: starting the pass of each session's newest message again", "stream_seq", s.Processed(), "subjects_seen", cu.seen.len())
	cu.reset = false
	next, ok := s.replace(ctx, iter, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.cfg.Subjects.SessionFilter()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if ok {
		cu.consumer, cu.last = "", time.Now()
	}
	return next
}

// replace swaps the consumer for a new one made with cfg and returns its
// iterator, or, if that fails, the current one and false.
func (s *Subscriber) replace(ctx context.Context, iter jetstream.MessagesContext, cfg jetstream.OrderedConsumerConfig) (jetstream.MessagesContext, bool) {
	name := s.stream.CachedInfo().Config.Name
	cons, err := s.js.OrderedConsumer(ctx, name, cfg)
	if err != nil {
		s.log.Warn("recreate consumer", "err", err)
		return iter, false
	}
	next, err := cons.Messages(s.pullOpts()...)
	if err != nil {
		s.log.Warn("recreate consumer", "err", err)
		s.deleteConsumer(name, cons.CachedInfo().Name)
		return iter, false
	}
	s.life.Lock()
	if s.state != stateRunning {
		s.life.Unlock()
		next.Stop()
		s.deleteConsumer(name, cons.CachedInfo().Name)
		return iter, false // stopped by Close: its Next says so
	}
	old := s.cons
	s.iter, s.cons = next, cons
	s.life.Unlock()
	iter.Stop()
	if info := old.CachedInfo(); info != nil {
		s.deleteConsumer(name, info.Name)
	}
	s.lag.Store(cons.CachedInfo().NumPending)
	return next, true
}

// fillGap reads the newest valid snapshot of a session whose newest
// message is fenced and the message below it was never delivered (a
// catch-up delivers only each session's newest message).
func (s *Subscriber) fillGap(ctx context.Context, m snapshot.Meta) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
	st, err := snapshot.Latest(rctx, s.stream, s.cfg.Subjects, s.cfg.Sealer, m.Session, s.cfg.Fence)
	cancel()
	if ctx.Err() != nil {
		return // closing
	}
	s.mu.Lock()
	out, qerr := s.store.applyRead(m.Session, m.StreamSeq, st, err)
	s.mu.Unlock()
	s.log.Debug("read under a fenced snapshot", "session", m.Session, "fenced_seq", m.StreamSeq, "read_seq", st.StreamSeq, "err", err)
	switch out {
	case quarantined:
		s.quarantined(m.Session, m.StreamSeq, qerr)
	case ended:
		s.sessionEnded(st.Meta)
	case unresolved:
		s.log.Warn("cannot read under a fenced snapshot yet: trying again", "session", m.Session, "fenced_seq", m.StreamSeq, "err", err)
		s.kick()
	}
}

func (s *Subscriber) quarantined(id model.SessionID, streamSeq uint64, err error) {
	// err names the session and what was wrong; it never holds payload
	// bytes (snapshot errors quote at most a short prefix of a header).
	s.log.Warn("session quarantined", "session", id, "stream_seq", streamSeq, "err", err)
	if s.cfg.OnQuarantine != nil {
		s.cfg.OnQuarantine(id, err)
	}
}

// advance records progress after the message at streamSeq, with pending
// messages still to come.
func (s *Subscriber) advance(streamSeq, pending uint64) {
	s.lag.Store(pending)
	s.raise(streamSeq)
}

// raise records that every session message up to streamSeq was handled.
// The consumer's goroutine and a drain's reads both raise it, never lower.
func (s *Subscriber) raise(streamSeq uint64) {
	for {
		p := s.processed.Load()
		if streamSeq <= p || s.processed.CompareAndSwap(p, streamSeq) {
			break
		}
	}
	s.moved.Store(time.Now().UnixNano())
	s.progress.broadcast()
}

// Get returns the newest valid snapshot held of session id. A held
// snapshot that a new claim fenced is not returned while it waits for
// Refence. Stored.Data must not be modified; it stays valid after the
// session is updated. Meta.Prev is not kept (zero).
func (s *Subscriber) Get(id model.SessionID) (snapshot.Stored, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.store.get(id)
}

// Lookup says what the copy holds of session id, and returns its newest
// valid snapshot when that is Valid. MustRead means the copy cannot say
// (its newest message is fenced, or sits on a gap not read yet): the
// caller reads the stream leader (ReadLatest) before it answers anything
// for the session. A session with a valid snapshot and no tombstone is
// never Absent or Ended.
func (s *Subscriber) Lookup(id model.SessionID) (snapshot.Stored, Held) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.store.lookup(id)
}

// Take holds st, the newest valid snapshot of its session as read from the
// stream leader by a caller Lookup sent there, as if it had been
// delivered: the copy is resolved for the next reader.
func (s *Subscriber) Take(st snapshot.Stored) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.store.sessions[st.Session]; e != nil && s.store.fence.Fenced(e.epoch, e.streamSeq) {
		s.store.replace(ref{st.Session, e.streamSeq, false}, st, nil)
		return
	}
	s.store.applyRead(st.Session, st.StreamSeq, st, nil)
}

// Len returns the number of sessions held.
func (s *Subscriber) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.store.sessions)
}

// HeldBytes returns the payload bytes held, the snapshots' sizes summed.
func (s *Subscriber) HeldBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.store.held
}

// Range calls fn with every held snapshot (as Get returns them), in no
// particular order, until fn returns false. It does not hold a lock while
// fn runs, so fn may be slow (materializing a session at promotion) and
// may call the Subscriber; a session updated meanwhile is seen either
// before or after the update, and a session added meanwhile may be missed.
func (s *Subscriber) Range(fn func(snapshot.Stored) bool) {
	s.mu.RLock()
	// Iterating a map across lock releases is safe: each step of the
	// iterator runs under the lock, and Go defines iteration over a map
	// that changes between steps.
	for id, e := range s.store.sessions {
		st, ok := s.store.stored(id, e)
		if !ok {
			continue
		}
		s.mu.RUnlock()
		more := fn(st)
		s.mu.RLock()
		if !more {
			break
		}
	}
	s.mu.RUnlock()
}

// Quarantined returns the quarantined sessions with the error that
// quarantined each.
func (s *Subscriber) Quarantined() map[model.SessionID]error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.store.quarantines()
}

// QuarantineOf returns the error that quarantined session id, nil if it
// is not quarantined. A quarantined session's older snapshot may still be
// held (Get returns it); a promoted node does not serve it, since the
// newest message, which its user may have been answered after, is lost.
func (s *Subscriber) QuarantineOf(id model.SessionID) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if q, ok := s.store.quarantined[id]; ok {
		return q.err
	}
	return nil
}

// Processed returns the highest stream sequence handled.
func (s *Subscriber) Processed() uint64 { return s.processed.Load() }

// Lag returns how many messages were pending after the last one handled:
// how far behind the stream the backup was then.
func (s *Subscriber) Lag() uint64 { return s.lag.Load() }

// CaughtUp reports whether everything that was in the stream when Start
// created the consumer has been handled.
func (s *Subscriber) CaughtUp() bool { return s.caughtUp.Load() }

// WaitCaughtUp waits until CaughtUp, the Subscriber is closed, or ctx ends.
func (s *Subscriber) WaitCaughtUp(ctx context.Context) error {
	for {
		ch := s.progress.wait()
		if s.caughtUp.Load() {
			return nil
		}
		if err := s.stopped(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for catch-up (stream seq %d handled, %d pending): %w", s.Processed(), s.Lag(), ctx.Err())
		case <-ch:
		}
	}
}

// DrainTo waits until everything in the stream up to stream sequence seq
// has been handled: the promoting backup reads the stream's last sequence
// and drains to it before it claims the group.
//
// seq itself may never be delivered: it may have been deleted, or it may
// be an older message of a session whose newest came later. So once the
// consumer is caught up and idle, DrainTo also asks the stream leader for
// the first session message after the last one handled: if there is none
// at or below seq, everything up to seq has been handled. If there is one,
// stored at least drainStall ago, and the consumer has handed over nothing
// for drainStall either, DrainTo reads the messages up to seq from the
// stream leader itself: the promotion then waits for the stream leader,
// not for a consumer that resets.
func (s *Subscriber) DrainTo(ctx context.Context, seq uint64) error {
	poll := time.NewTicker(drainPoll)
	defer poll.Stop()
	last := s.Processed()
	check := true // ask the stream leader once before the first tick
	for {
		ch := s.progress.wait()
		if s.caughtUp.Load() && s.Processed() >= seq {
			return nil
		}
		if err := s.stopped(); err != nil {
			return err
		}
		// Before the catch-up ends a session's newest message may still be
		// to come while an older one sits at or below seq.
		if check && s.caughtUp.Load() {
			next, stored, err := s.nextUpTo(ctx, seq)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					s.log.Debug("drain: read the stream", "seq", seq, "err", err)
				}
			case next == 0:
				return nil
			case time.Since(stored) >= drainStall && time.Since(time.Unix(0, s.moved.Load())) >= drainStall:
				// The consumer has had the message for drainStall and
				// handed over nothing meanwhile.
				if err := s.readUpTo(ctx, next, seq); err != nil && ctx.Err() == nil {
					s.log.Warn("drain: read from the stream leader", "seq", seq, "err", err)
				}
			}
		}
		check = false
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain to stream seq %d (handled %d, %d pending): %w", seq, s.Processed(), s.Lag(), ctx.Err())
		case <-ch:
		case <-poll.C:
			// Only an idle consumer needs the stream leader's word.
			p := s.Processed()
			check, last = p == last, p
		}
	}
}

// nextUpTo returns the stream sequence of the first session message after
// the last one handled, and when the server stored it, if it is at or
// below seq; else 0.
func (s *Subscriber) nextUpTo(ctx context.Context, seq uint64) (uint64, time.Time, error) {
	p := s.Processed()
	if p >= seq {
		return 0, time.Time{}, nil
	}
	msg, err := nextAfter(ctx, s.stream, s.cfg.Subjects.SessionFilter(), p)
	if err != nil || msg == nil || msg.Sequence > seq {
		return 0, time.Time{}, err
	}
	return msg.Sequence, msg.Time, nil
}

// readUpTo reads from the stream leader the session messages from stream
// sequence next up to seq that the consumer did not hand over, and applies
// each as if it had been delivered. The consumer delivers them again once
// it works: the store takes a message at most once.
func (s *Subscriber) readUpTo(ctx context.Context, next, seq uint64) error {
	s.log.Warn("consumer silent while a drain waits: reading from the stream leader", "from", next, "to", seq, "handled", s.Processed())
	for next <= seq {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
		raw, err := nextAfter(rctx, s.stream, s.cfg.Subjects.SessionFilter(), next-1)
		cancel()
		if err != nil {
			return err
		}
		if raw == nil || raw.Sequence > seq {
			break
		}
		m, perr := snapshot.ParseMeta(s.cfg.Subjects, s.cfg.Sealer, raw.Subject, raw.Header, raw.Data, raw.Sequence, raw.Time)
		s.apply(ctx, raw.Subject, raw.Sequence, m, raw.Data, perr)
		s.raise(raw.Sequence)
		next = raw.Sequence + 1
	}
	s.raise(seq) // no session message is left up to seq
	return nil
}

// stopped returns why a wait cannot succeed: never started, or closed.
func (s *Subscriber) stopped() error {
	s.life.Lock()
	defer s.life.Unlock()
	switch s.state {
	case stateNew:
		return ErrNotStarted
	case statePaused:
		return ErrPaused
	case stateClosed:
		return ErrClosed
	}
	return nil
}

// Refence is called by the group when a new claim (epoch, fence sequence)
// appears: every held snapshot that is now fenced is replaced by the
// session's newest valid snapshot, read from the stream leader, or dropped
// if there is none. A session whose read fails for a reason that may pass
// (a timeout, no leader) keeps its fenced snapshot, which Get and Range
// skip, and its error is returned: call Refence again.
func (s *Subscriber) Refence(ctx context.Context) error {
	s.mu.RLock()
	refs := s.store.fencedHeld()
	s.mu.RUnlock()
	var errs []error
	for _, r := range refs {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
		st, err := snapshot.Latest(rctx, s.stream, s.cfg.Subjects, s.cfg.Sealer, r.id, s.cfg.Fence)
		cancel()
		if transient(err) {
			errs = append(errs, fmt.Errorf("refence session %s stream seq %d: %w", r.id, r.streamSeq, err))
			continue
		}
		s.mu.Lock()
		out, qerr := s.store.replace(r, st, err)
		s.mu.Unlock()
		switch out {
		case quarantined:
			s.quarantined(r.id, r.streamSeq, qerr)
		case applied, dropped, ended:
			s.log.Info("refenced", "session", r.id, "fenced_seq", r.streamSeq, "now_seq", st.StreamSeq, "outcome", out)
		}
		if out == ended {
			s.sessionEnded(st.Meta)
		}
	}
	errs = append(errs, s.resolveGaps(ctx)...)
	return errors.Join(errs...)
}

// resolveGaps reads again the sessions whose read under a fenced message
// failed for a passing reason.
func (s *Subscriber) resolveGaps(ctx context.Context) []error {
	s.mu.RLock()
	gaps := make(map[model.SessionID]uint64, len(s.store.unresolved))
	for id, seq := range s.store.unresolved {
		gaps[id] = seq
	}
	s.mu.RUnlock()
	var errs []error
	for id, under := range gaps {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadTimeout)
		st, err := snapshot.Latest(rctx, s.stream, s.cfg.Subjects, s.cfg.Sealer, id, s.cfg.Fence)
		cancel()
		s.mu.Lock()
		out, qerr := s.store.applyRead(id, under, st, err)
		s.mu.Unlock()
		switch out {
		case quarantined:
			s.quarantined(id, under, qerr)
		case ended:
			s.sessionEnded(st.Meta)
		case unresolved:
			errs = append(errs, fmt.Errorf("read session %s under fenced stream seq %d: %w", id, under, err))
		}
	}
	return errs
}

// pending reports whether held snapshots wait to be judged again, or gaps
// to be read.
func (s *Subscriber) pending() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.store.unresolved) > 0 || len(s.store.fencedHeld()) > 0
}

// Kick asks the resolver to run Refence soon: the group's claims changed.
// It never blocks; a Refence that fails is tried again every
// resolveRetry until it succeeds.
func (s *Subscriber) Kick() { s.kick() }

func (s *Subscriber) kick() {
	select {
	case s.resolve <- struct{}{}:
	default:
	}
}

// resolveRetry spaces the resolver's attempts while reads keep failing.
const resolveRetry = time.Second

// resolver runs Refence when kicked, and again while anything is pending.
func (s *Subscriber) resolver(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(resolveRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.resolve:
		case <-t.C:
			if !s.pending() {
				continue
			}
		}
		if err := s.Refence(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("judging held snapshots by the new claims: trying again", "retry_in", resolveRetry, "err", err)
		}
	}
}

// ReadLatest reads the newest valid snapshot of session id from the stream
// leader; see Reader.ReadLatest.
func (s *Subscriber) ReadLatest(ctx context.Context, id model.SessionID) (snapshot.Stored, error) {
	return s.reader.ReadLatest(ctx, id)
}

// ReadAll reads the newest valid snapshot of every session from the
// stream; see Reader.ReadAll.
func (s *Subscriber) ReadAll(ctx context.Context, fn func(snapshot.Stored) error) error {
	return s.reader.ReadAll(ctx, fn)
}

// Stats is a Subscriber's state and counts, for status pages and metrics.
type Stats struct {
	Sessions    int    // sessions held
	HeldBytes   int64  // their payload bytes
	Quarantined int    // sessions quarantined
	Ended       int    // ended sessions remembered (at most Config.MaxEnded)
	Processed   uint64 // highest stream sequence handled
	Lag         uint64 // messages pending after the last one handled
	CaughtUp    bool

	Applied     uint64 // snapshots taken as their session's newest
	Tombstones  uint64 // sessions ended
	Older       uint64 // messages ignored as not newer than what was known
	Fenced      uint64 // messages ignored by the fence rule
	Quarantines uint64 // messages that quarantined a session
	BadSubjects uint64 // messages not on a session subject
	Reads       uint64 // reads from the stream leader under fenced snapshots
}

// Stats returns the Subscriber's state and counts.
func (s *Subscriber) Stats() Stats {
	s.mu.RLock()
	st := s.store
	out := Stats{
		Sessions:    len(st.sessions),
		HeldBytes:   st.held,
		Quarantined: len(st.quarantined),
		Ended:       st.ended.len(),
		Applied:     st.counts.applied,
		Tombstones:  st.counts.tombstones,
		Older:       st.counts.older,
		Fenced:      st.counts.fenced,
		Quarantines: st.counts.quarantines,
		BadSubjects: st.counts.badSubjects,
		Reads:       st.counts.reads,
	}
	s.mu.RUnlock()
	out.Processed, out.Lag, out.CaughtUp = s.Processed(), s.Lag(), s.CaughtUp()
	return out
}

// String names an outcome in logs.
func (o outcome) String() string {
	switch o {
	case applied:
		return "applied"
	case ended:
		return "ended"
	case older:
		return "older"
	case fenced:
		return "fenced"
	case fencedGap:
		return "fenced-gap"
	case quarantined:
		return "quarantined"
	case badSubject:
		return "bad-subject"
	case dropped:
		return "dropped"
	case unresolved:
		return "unresolved"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// notifier wakes every waiter at once: wait returns a channel that the
// next broadcast closes. It allocates only when someone waits.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// trunc cuts untrusted text (a subject) for a log line.
func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
