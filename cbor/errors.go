package cbor

import (
	"errors"
	"strconv"
	"strings"

	"understudy/model"
)

// Sentinel errors; a *DecodeError wraps one of them.
var (
	// ErrTruncated: the bytes end before the snapshot does.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed: not the CBOR of a snapshot (wrong type, wrong shape,
	// trailing bytes, invalid UTF-8, a value out of range).
	ErrMalformed = errors.New("malformed")
	// ErrNonCanonical: valid CBOR, but not the deterministic encoding
	// (a longer head than needed, an indefinite length, keys out of order).
	ErrNonCanonical = errors.New("not deterministic encoding")
	// ErrDuplicateKey: a map holds the same key twice.
	ErrDuplicateKey = errors.New("duplicate map key")
	// ErrUnknownTag: a tag the format does not define.
	ErrUnknownTag = errors.New("unknown tag")
	// ErrTooLarge: the snapshot exceeds a limit (size, nesting, items).
	ErrTooLarge = errors.New("over limit")
	// ErrFormat: a format version this code does not read.
	ErrFormat = errors.New("unsupported format version")
	// ErrEncode: the session cannot be encoded (invalid UTF-8 in a string,
	// a value out of range). It names the session.
	ErrEncode = errors.New("cannot encode")
)

// DecodeError says why bytes are not a snapshot: what was wrong, where in
// the snapshot, at which byte, and which session it claimed to be once the
// envelope got that far.
type DecodeError struct {
	Session model.SessionID // empty if the id was not reached or not valid
	Where   string          // "interactive #17 params \"name\""
	Offset  int             // byte offset of the problem
	Err     error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("snapshot")
	if e.Session != "" {
		b.WriteString(" session ")
		b.WriteString(string(e.Session))
	}
	if e.Where != "" {
		b.WriteString(": ")
		b.WriteString(e.Where)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	b.WriteString(" at byte ")
	b.WriteString(strconv.Itoa(e.Offset))
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }
