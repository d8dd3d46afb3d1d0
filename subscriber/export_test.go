package subscriber

// WithPullMaxBytes makes cfg's consumers pull with a byte budget, which
// makes nats-server skip messages of a catch-up: for tests of the check
// that notices.
func WithPullMaxBytes(cfg Config, n int) Config {
	cfg.pullMaxBytes = n
	return cfg
}
