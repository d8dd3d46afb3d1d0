package broker

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the prefix of every subject, stream and bucket name when
// none is configured.
const DefaultPrefix = "understudy"

const (
	// MaxTokenLen bounds a token (session id, node name). Session ids are
	// 128-bit random values, far shorter; the bound keeps hostile input
	// from making subjects (and log lines) arbitrarily long.
	MaxTokenLen = 128

	// MaxPrefixLen bounds a prefix, which also names the stream and the
	// bucket.
	MaxPrefixLen = 32

	// quoteLen is how much of a rejected input an error shows.
	quoteLen = 40
)

// Subjects names everything understudy puts on NATS, derived from one
// prefix so that several deployments can share a NATS account. The zero
// value uses DefaultPrefix.
//
// Names:
//
//	stream          <PREFIX>_SESSIONS          (prefix upper-cased)
//	session         <prefix>.sess.<sessionID>  filter <prefix>.sess.>
//	heartbeat       <prefix>.hb.<node>         filter <prefix>.hb.>
//	failover        <prefix>.control.failover  filter <prefix>.control.>
//	erase           <prefix>.control.erase
//	node control    <prefix>.node.<node>
//	groups bucket   <prefix>_groups
type Subjects struct {
	prefix string
}

// NewSubjects returns the names for prefix; an empty prefix means
// DefaultPrefix. The prefix must be a single token of at most MaxPrefixLen
// bytes: letters, digits, '_' and '-'.
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		return Subjects{}, nil
	}
	if len(prefix) > MaxPrefixLen {
		return Subjects{}, fmt.Errorf("prefix %s: %w: longer than %d bytes", quote(prefix), ErrInvalidToken, MaxPrefixLen)
	}
	if err := ValidToken(prefix); err != nil {
		return Subjects{}, fmt.Errorf("prefix: %w", err)
	}
	return Subjects{prefix: prefix}, nil
}

// Prefix returns the prefix in use.
func (s Subjects) Prefix() string {
	if s.prefix == "" {
		return DefaultPrefix
	}
	return s.prefix
}

// StreamName returns the name of the session stream, <PREFIX>_SESSIONS.
func (s Subjects) StreamName() string {
	return strings.ToUpper(s.Prefix()) + "_SESSIONS"
}

// SessionSubject returns the subject a session's snapshots are published
// on. The id is checked with ValidToken first: it usually arrives from a
// browser, and a '.', '*' or '>' in it would address other subjects.
func (s Subjects) SessionSubject(id string) (string, error) {
	if err := ValidToken(id); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return s.Prefix() + ".sess." + id, nil
}

// SessionFilter returns the filter matching every session subject; it is
// the session stream's only subject.
func (s Subjects) SessionFilter() string {
	return s.Prefix() + ".sess.>"
}

// SessionID returns the session id of a session subject, checked with
// ValidToken, so a consumer can trust the key it stores under.
func (s Subjects) SessionID(subject string) (string, error) {
	id, ok := strings.CutPrefix(subject, s.Prefix()+".sess.")
	if !ok {
		return "", fmt.Errorf("subject %s: %w: not a session subject", quote(subject), ErrInvalidToken)
	}
	if err := ValidToken(id); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return id, nil
}

// HeartbeatSubject returns the subject node's heartbeats go to.
func (s Subjects) HeartbeatSubject(node string) (string, error) {
	if err := ValidToken(node); err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	return s.Prefix() + ".hb." + node, nil
}

// HeartbeatFilter returns the filter matching every node's heartbeats.
func (s Subjects) HeartbeatFilter() string {
	return s.Prefix() + ".hb.>"
}

// FailoverSubject returns the subject of the failover signal.
func (s Subjects) FailoverSubject() string {
	return s.Prefix() + ".control.failover"
}

// EraseSubject returns the subject an operator asks the primary to erase
// a session on.
func (s Subjects) EraseSubject() string {
	return s.Prefix() + ".control.erase"
}

// StandaloneSubject returns the subject a node asks whether the server it
// is connected to is a standalone one (see AskStandalone).
func (s Subjects) StandaloneSubject() string {
	return s.Prefix() + ".control.standalone"
}

// ControlFilter returns the filter matching every control subject.
func (s Subjects) ControlFilter() string {
	return s.Prefix() + ".control.>"
}

// NodeSubject returns node's own control subject. Every node subscribes to
// it, so "no responders" on it means the node's connection is gone (the
// fast path for a crash, DESIGN.md).
func (s Subjects) NodeSubject(node string) (string, error) {
	if err := ValidToken(node); err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	return s.Prefix() + ".node." + node, nil
}

// GroupsBucket returns the name of the key-value bucket holding one entry
// per replication group.
func (s Subjects) GroupsBucket() string {
	return s.Prefix() + "_groups"
}

// ValidToken reports whether tok may become one token of a subject: it
// must be 1 to MaxTokenLen bytes of ASCII letters, digits, '_' and '-'.
// That excludes '.', '*' and '>' (which change what a subject addresses),
// whitespace and control characters (which break the protocol line) and
// anything non-ASCII. The error quotes at most the first 40 bytes of tok,
// so a hostile id cannot flood the logs.
func ValidToken(tok string) error {
	if tok == "" {
		return fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(tok) > MaxTokenLen {
		return fmt.Errorf("%w %s: longer than %d bytes", ErrInvalidToken, quote(tok), MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if !tokenByte(tok[i]) {
			return fmt.Errorf("%w %s: byte %q at %d", ErrInvalidToken, quote(tok), tok[i], i)
		}
	}
	return nil
}

func tokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// quote renders untrusted input for an error: Go-quoted, so control bytes
// and invalid UTF-8 are escaped, and cut to quoteLen bytes with the full
// length noted.
func quote(s string) string {
	if len(s) <= quoteLen {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:quoteLen], len(s))
}
