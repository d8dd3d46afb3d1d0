package snapshot

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"understudy/broker"
)

// Sealer encrypts and authenticates snapshot payloads. The publisher seals
// a snapshot after encoding it, and the key id goes in the message's
// Understudy-Key header; every reader opens it before looking inside
// (ParseMeta, Open). A Sealer binds the ciphertext to the message it was
// sealed for, so a payload moved to another session's subject, or whose
// headers were changed, does not open.
//
// Keyring is the implementation: AES-256-GCM with rotating keys.
type Sealer interface {
	// Seal returns the sealed payload of a message with meta m (its
	// Session, Epoch, Seq and Tombstone are what it is bound to) and the
	// id of the key that sealed it.
	Seal(m Meta, plaintext []byte) (sealed []byte, keyID string, err error)
	// Open returns the plaintext of a payload sealed with key keyID for a
	// message with meta m, or an error if it was sealed for another
	// message, was changed, or the key is unknown. keyID "" asks about an
	// unsealed payload: Open returns it as is if the Sealer accepts
	// unsealed snapshots, an error otherwise.
	Open(m Meta, keyID string, sealed []byte) ([]byte, error)
}

// ErrSealed: a payload that could not be opened (sealed, and no key or the
// wrong key; tampered with; or not sealed where sealing is required).
var ErrSealed = errors.New("snapshot seal")

// Open returns the plaintext of a stored message's payload: the payload
// itself when it is not sealed and sealer is nil. The meta must be the
// message's own (as ParseMeta returned it).
func Open(sealer Sealer, m Meta, data []byte) ([]byte, error) {
	p, err := open(sealer, m, data)
	if err != nil {
		return nil, fmt.Errorf("session %s stream seq %d: %w", m.Session, m.StreamSeq, err)
	}
	return p, nil
}

func open(sealer Sealer, m Meta, data []byte) ([]byte, error) {
	switch {
	case sealer != nil:
		return sealer.Open(m, m.Key, data)
	case m.Key != "":
		return nil, fmt.Errorf("%w: sealed with key %s, and this reader was given no key file", ErrSealed, m.Key)
	}
	return data, nil
}

// MaxKeyIDLen bounds a key id: it travels in a header.
const MaxKeyIDLen = 32

// Keyring is a Sealer: AES-256-GCM with a 96-bit random nonce, keyed by
// one of several keys. New payloads are sealed with the current key (the
// last one of the key file); older keys still open what they sealed, so
// keys can be rotated without a pause: add a key on every node, restart
// them one at a time, and remove the old key once no snapshot sealed with
// it is left in the stream (the stream's max age, or after every session
// it sealed has ended and its retention has passed).
//
// The additional data of each seal is the message's session id, epoch,
// interaction sequence, tombstone flag and the key id, so a payload opens
// only on the message it was sealed for.
//
// A sealed payload is the nonce followed by the ciphertext and its 16-byte
// tag: 28 bytes longer than the plaintext. With random nonces one key
// should seal fewer than 2³² payloads; rotate keys well before that (a
// yearly rotation leaves a wide margin at millions of interactions a day).
type Keyring struct {
	keys    map[string]cipher.AEAD
	current string
	// AllowUnsealed makes Open accept unsealed payloads, for the time it
	// takes to turn sealing on in a running deployment (sessions begun
	// before still carry plaintext). Off, an unsealed snapshot is refused:
	// it was not written by a node holding the key.
	AllowUnsealed bool
}

var _ Sealer = (*Keyring)(nil)

// NewKeyring returns a keyring of 32-byte AES-256 keys by id; current
// names the key that seals.
func NewKeyring(keys map[string][]byte, current string) (*Keyring, error) {
	k := &Keyring{keys: make(map[string]cipher.AEAD, len(keys)), current: current}
	for id, key := range keys {
		if err := k.add(id, key); err != nil {
			return nil, err
		}
	}
	if _, ok := k.keys[current]; !ok {
		return nil, fmt.Errorf("%w: current key %q is not in the keyring", ErrSealed, current)
	}
	return k, nil
}

func (k *Keyring) add(id string, key []byte) error {
	if err := broker.ValidToken(id); err != nil || len(id) > MaxKeyIDLen {
		return fmt.Errorf("%w: key id %q: 1 to %d letters, digits, '-' or '_'", ErrSealed, id, MaxKeyIDLen)
	}
	if len(key) != 32 {
		return fmt.Errorf("%w: key %s: %d bytes, want 32 (AES-256)", ErrSealed, id, len(key))
	}
	if _, dup := k.keys[id]; dup {
		return fmt.Errorf("%w: key id %s twice", ErrSealed, id)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("%w: key %s: %w", ErrSealed, id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("%w: key %s: %w", ErrSealed, id, err)
	}
	k.keys[id] = aead
	return nil
}

// ParseKeyring reads a key file: one key a line, "<id> <64 hex digits>",
// the last one current; blank lines and lines starting with '#' are
// skipped; a line "allow-unsealed" sets AllowUnsealed. Errors name the
// line, never a key.
func ParseKeyring(data []byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "allow-unsealed":
			k.AllowUnsealed = true
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: key file line %d: want \"<id> <64 hex digits>\"", ErrSealed, n)
		}
		key, err := hex.DecodeString(f[1])
		if err != nil {
			return nil, fmt.Errorf("%w: key file line %d: key %s is not hex", ErrSealed, n, f[0])
		}
		if err := k.add(f[0], key); err != nil {
			return nil, fmt.Errorf("key file line %d: %w", n, err)
		}
		clear(key)
		k.current = f[0]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrSealed, err)
	}
	if k.current == "" {
		return nil, fmt.Errorf("%w: key file holds no key", ErrSealed)
	}
	return k, nil
}

// LoadKeyring reads a key file (see ParseKeyring).
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	defer clear(data)
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Current returns the id of the key that seals.
func (k *Keyring) Current() string { return k.current }

// Seal seals plaintext for the message m with the current key.
func (k *Keyring) Seal(m Meta, plaintext []byte) ([]byte, string, error) {
	aead := k.keys[k.current]
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, "", fmt.Errorf("session %s seq %d: %w: nonce: %w", m.Session, m.Seq, ErrSealed, err)
	}
	return aead.Seal(out, out, plaintext, additionalData(m, k.current)), k.current, nil
}

// Open opens a payload sealed for the message m with key keyID.
func (k *Keyring) Open(m Meta, keyID string, sealed []byte) ([]byte, error) {
	if keyID == "" {
		if k.AllowUnsealed {
			return sealed, nil
		}
		return nil, fmt.Errorf("%w: not sealed, and snapshots must be (the key file does not say allow-unsealed)", ErrSealed)
	}
	aead, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with key %s, which the key file does not hold", ErrSealed, keyID)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: key %s: %d bytes, too short to be sealed", ErrSealed, keyID, len(sealed))
	}
	n := aead.NonceSize()
	p, err := aead.Open(nil, sealed[:n], sealed[n:], additionalData(m, keyID))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: does not open: tampered with, or sealed for another message (session, epoch, seq or tombstone)", ErrSealed, keyID)
	}
	return p, nil
}

// additionalData binds a seal to its message.
func additionalData(m Meta, keyID string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, "understudy snapshot v1\x00"...)
	b = append(b, m.Session...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	if m.Tombstone {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, keyID...)
}
