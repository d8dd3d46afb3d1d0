package model

import (
	"encoding/base32"
	"fmt"
	"strconv"
)

// SessionID names a session: 128 random bits written as 26 characters of
// lower-case base32 (a-z, 2-7). The alphabet has no '.', '*', '>' or space,
// so a parsed SessionID is safe to put in a NATS subject and a URL.
//
// Only ParseSessionID and NewSessionID make SessionIDs from outside input;
// anything else that claims to be one is unchecked.
type SessionID string

// SessionIDLen is the length of a session id's text.
const SessionIDLen = 26

var sessionIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewSessionID returns the session id of 16 random bytes. The caller supplies
// the randomness (crypto/rand in production) so that runs can be replayed.
func NewSessionID(random [16]byte) SessionID {
	return SessionID(sessionIDEncoding.EncodeToString(random[:]))
}

// ParseSessionID checks that s is the text of a session id. The error quotes
// at most a short prefix of s, so a hostile id cannot flood a log.
func ParseSessionID(s string) (SessionID, error) {
	if len(s) != SessionIDLen {
		return "", fmt.Errorf("%w: %s: length %d, want %d", ErrBadSessionID, quoteShort(s), len(s), SessionIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return "", fmt.Errorf("%w: %s: character %q at %d", ErrBadSessionID, quoteShort(s), c, i)
		}
	}
	// 26 characters carry 130 bits; the last two must be zero so that every
	// id has exactly one spelling.
	b, err := sessionIDEncoding.DecodeString(s)
	if err != nil || len(b) != 16 || sessionIDEncoding.EncodeToString(b) != s {
		return "", fmt.Errorf("%w: %s: not canonical", ErrBadSessionID, quoteShort(s))
	}
	return SessionID(s), nil
}

// String returns the id's text.
func (id SessionID) String() string { return string(id) }

// quoteShort quotes at most the first 32 bytes of s.
func quoteShort(s string) string {
	const n = 32
	if len(s) > n {
		return strconv.Quote(s[:n]) + "…"
	}
	return strconv.Quote(s)
}

// StepID identifies one step instance within a session. Ids are handed out
// in order from the session's counter, so the same run gives the same ids.
// Steps refer to each other only by id: the pools stay a flat table, a step
// shared by two parents is stored once, and no pointer cycle can reach the
// encoder.
type StepID uint32

// InstanceID identifies one running application within a session: an index
// into Session.Instances. Instance 0 is the application the session started.
type InstanceID uint32
