package broker

import "errors"

// Sentinel errors. Every error this package returns wraps one of these (or
// an error from nats.go or nats-server) with the names that matter: the URL,
// the stream, the offending input.
var (
	// ErrInvalidConfig reports a Config, EmbeddedConfig, StreamConfig or
	// BucketConfig that Validate rejects.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrInvalidToken reports a string that may not become part of a
	// subject: a session id, a node name or a prefix.
	ErrInvalidToken = errors.New("invalid subject token")

	// ErrNoConnection reports that Connect gave up before the first
	// connection was made: the context ended, or the client closed (for
	// example after the same authorization error twice).
	ErrNoConnection = errors.New("no connection to NATS")

	// ErrIncompatibleStream reports an existing stream whose settings
	// differ from the wanted ones in a way that changes correctness.
	// EnsureStream never updates a stream to resolve it: an operator does.
	ErrIncompatibleStream = errors.New("incompatible stream")

	// ErrIncompatibleBucket is ErrIncompatibleStream for a key-value bucket.
	ErrIncompatibleBucket = errors.New("incompatible bucket")

	// ErrServerNotReady reports an embedded server that did not accept
	// connections, or did not enable JetStream, before the context ended.
	ErrServerNotReady = errors.New("nats server not ready")

	// ErrAlreadyStarted reports Start on an Embedded that is running.
	ErrAlreadyStarted = errors.New("nats server already started")
)
