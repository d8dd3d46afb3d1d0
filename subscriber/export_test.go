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
