package subscriber

// WithPullMaxBytes makes cfg's consumers pull with a byte budget, which
// makes nats-server skip messages of a catch-up: for tests of the check
// that notices.
func WithPullMaxBytes(cfg Config, n int) Config {
	cfg.pullMaxBytes = n
	return cfg
}

// SilenceConsumer stops the consumer's iterator behind the subscriber's
// back: the consumer then hands over nothing, as one whose server died does
// while it resets itself for longer than a drain may wait.
func SilenceConsumer(s *Subscriber) {
	s.life.Lock()
	it := s.iter
	s.life.Unlock()
	it.Stop()
}

// WithPullBatch makes cfg's consumers pull n messages at a time.
func WithPullBatch(cfg Config, n int) Config {
	cfg.pullBatch = n
	return cfg
}

// WithAfterHandle makes the consumer's goroutine call fn after each
// message it handled.
func WithAfterHandle(cfg Config, fn func(s *Subscriber, streamSeq uint64)) Config {
	cfg.afterHandle = fn
	return cfg
}

// DeleteConsumer deletes the subscriber's consumer on the server, as a
// server that dies with it does: nats.go's ordered consumer then resets
// itself.
func DeleteConsumer(s *Subscriber) {
	s.life.Lock()
	c := s.cons
	s.life.Unlock()
	s.deleteConsumer(s.stream.CachedInfo().Config.Name, c.CachedInfo().Name)
}
