package replaycmd

import "errors"

// Sentinel errors. Every error about a session wraps one of these (or one
// of package snapshot's, cbor's or model's) with the session id and the
// sequence that matter.
var (
	// ErrNoSession: the stream holds no message of the session: it never
	// existed, or it ended and was purged.
	ErrNoSession = errors.New("no such session in the stream")

	// ErrDiscarded: the snapshot asked for is older than the session's
	// kept history (the stream keeps the last 16 per session by default).
	ErrDiscarded = errors.New("discarded: older than the kept history")

	// ErrNoSnapshot: the session's kept history holds no snapshot at the
	// sequence asked for, and none was discarded that could have been it.
	ErrNoSnapshot = errors.New("no such snapshot")

	// ErrUndecodable: a message on the session's subject is not a
	// snapshot this tool can read (bad headers or bad CBOR). What could be
	// read was shown.
	ErrUndecodable = errors.New("cannot decode snapshot")

	// ErrBadExport: an import file that is not an export of this tool.
	ErrBadExport = errors.New("not a replay export")

	// ErrWouldFail: check found live sessions the tool's build cannot
	// rebuild.
	ErrWouldFail = errors.New("sessions would fail")
)
