package publisher

import (
	"context"
	"fmt"

	"understudy/model"
)

// PublishAsync queues a session's snapshot and returns without waiting for
// its ack. If the session already has a publish in flight, s replaces any
// snapshot queued behind it. When MaxPending sessions have publishes in
// flight it blocks until one finishes or ctx ends (backpressure). Outcomes
// go to Config.OnAsyncError.
func (p *Publisher) PublishAsync(ctx context.Context, s *model.Session) error {
	if p.cfg.OnAsyncError == nil {
		return fmt.Errorf("session %s: PublishAsync needs Config.OnAsyncError", s.ID)
	}
	st := p.session(s.ID)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("session %s: %w", s.ID, ErrClosed)
	}
	if st.running {
		st.queued = s
		p.mu.Unlock()
		return nil
	}
	st.running = true
	p.wg.Add(1)
	p.mu.Unlock()

	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		p.mu.Lock()
		st.running = false
		p.mu.Unlock()
		p.wg.Done()
		return fmt.Errorf("session %s seq %d: waiting for a publish slot: %w", s.ID, s.Seq, ctx.Err())
	}
	go p.drain(st, s)
	return nil
}

// drain publishes a session's snapshot, then whatever was queued behind it.
func (p *Publisher) drain(st *session, s *model.Session) {
	defer func() {
		<-p.sem
		p.wg.Done()
	}()
	for s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*p.cfg.Timeout)
		if _, err := p.Publish(ctx, s); err != nil {
			p.cfg.OnAsyncError(err)
		}
		cancel()
		p.mu.Lock()
		s, st.queued = st.queued, nil
		if s == nil {
			st.running = false
		}
		p.mu.Unlock()
	}
}

// Pending returns how many sessions have an async publish in flight.
func (p *Publisher) Pending() int { return len(p.sem) }

// Close refuses new async publishes and waits for those in flight, or for
// ctx to end.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publisher: %d sessions still publishing: %w", p.Pending(), ctx.Err())
	}
}
