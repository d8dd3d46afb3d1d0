package snapshot_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker"
	"understudy/cbor"
	"understudy/model/modeltest"
	"understudy/snapshot"
)

// keyFile returns key file text with keys named ids, each 32 bytes of
// its index.
func keyFile(ids ...string) string {
	var b strings.Builder
	b.WriteString("# test keys\n\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "%s %s\n", id, hex.EncodeToString(bytes.Repeat([]byte{byte(i + 1)}, 32)))
	}
	return b.String()
}

func keyring(t *testing.T, ids ...string) *snapshot.Keyring {
	t.Helper()
	k, err := snapshot.ParseKeyring([]byte(keyFile(ids...)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealedMessage returns a sealed snapshot message of session n, as the
// publisher would publish it: its meta (Key set), headers and payload.
func sealedMessage(t *testing.T, k snapshot.Sealer, n int, epoch, seq uint64) (snapshot.Meta, nats.Header, []byte) {
	t.Helper()
	run, _, err := modeltest.Drive(context.Background(), modeltest.Engine(), modeltest.SessionID(n), 1, "vehicle")
	if err != nil {
		t.Fatal(err)
	}
	s := run.Session().Clone()
	s.Epoch, s.Seq, s.Node = epoch, seq, "n1"
	plain, err := cbor.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	m := snapshot.Meta{Session: s.ID, Epoch: epoch, Seq: seq, Node: "n1", Format: cbor.FormatVersion}
	data, key, err := k.Seal(m, plain)
	if err != nil {
		t.Fatal(err)
	}
	m.Key = key
	return m, m.Header(data), data
}

func parse(k snapshot.Sealer, m snapshot.Meta, h nats.Header, data []byte) (snapshot.Meta, error) {
	subject, _ := broker.Subjects{}.SessionSubject(string(m.Session))
	return snapshot.ParseMeta(broker.Subjects{}, k, subject, h, data, 7, time.Now())
}

func TestSealRoundTrip(t *testing.T) {
	k := keyring(t, "k1")
	m, h, data := sealedMessage(t, k, 1, 2, 3)
	if h.Get(snapshot.HeaderKey) != "k1" {
		t.Fatalf("key header %q", h.Get(snapshot.HeaderKey))
	}
	got, err := parse(k, m, h, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "k1" || got.Epoch != 2 || got.Seq != 3 || got.Size != len(data) {
		t.Fatalf("meta %+v", got)
	}
	plain, err := snapshot.Open(k, got, data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cbor.Decode(plain)
	if err != nil || s.ID != m.Session {
		t.Fatalf("decoded %v, %v", s, err)
	}
	if bytes.Contains(data, []byte("Ada")) || !bytes.Contains(plain, []byte("Ada")) {
		t.Fatal("the payload is not sealed, or the test's answer is not in the session")
	}
	if len(data) != len(plain)+28 {
		t.Errorf("sealed %d bytes for %d", len(data), len(plain))
	}
	// Two seals of the same snapshot differ (fresh nonces): a retried
	// publish must resend the same bytes to be recognised as stored.
	again, _, _ := k.Seal(m, plain)
	if bytes.Equal(again, data) {
		t.Fatal("two seals are equal")
	}
}

// TestSealRotation: new snapshots use the newest key; what older keys
// sealed still opens while they are in the key file, and not after.
func TestSealRotation(t *testing.T) {
	old := keyring(t, "2025")
	m1, h1, d1 := sealedMessage(t, old, 1, 1, 1)
	rotated := keyring(t, "2025", "2026")
	if rotated.Current() != "2026" {
		t.Fatalf("current %s, want the last key", rotated.Current())
	}
	m2, h2, d2 := sealedMessage(t, rotated, 2, 1, 1)
	if m2.Key != "2026" {
		t.Fatalf("new snapshot sealed with %s", m2.Key)
	}
	if _, err := parse(rotated, m1, h1, d1); err != nil {
		t.Fatalf("old snapshot with the rotated keyring: %v", err)
	}
	if _, err := parse(rotated, m2, h2, d2); err != nil {
		t.Fatal(err)
	}
	// The old keyring does not know the new key; a keyring without the
	// old key cannot read what it sealed.
	if _, err := parse(old, m2, h2, d2); !errors.Is(err, snapshot.ErrBadMessage) || !strings.Contains(err.Error(), "2026") {
		t.Errorf("new key with the old keyring: %v", err)
	}
	newOnly, err := snapshot.ParseKeyring([]byte("2026 " + hex.EncodeToString(bytes.Repeat([]byte{2}, 32)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parse(newOnly, m2, h2, d2); err != nil {
		t.Fatalf("the same key under the same id: %v", err)
	}
	if _, err := parse(newOnly, m1, h1, d1); !errors.Is(err, snapshot.ErrSealed) || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("aged-out key: %v", err)
	}
}

// TestSealRejectsTamperingAndMoves: a payload opens only on the message it
// was sealed for; every refusal is ErrBadMessage naming the session.
func TestSealRejectsTamperingAndMoves(t *testing.T) {
	k := keyring(t, "k1")
	m, h, data := sealedMessage(t, k, 1, 2, 3)
	other, _, _ := sealedMessage(t, k, 2, 2, 3)

	// Each case changes the message, keeping its headers consistent with
	// what it claims (anyone can write them): only the seal can tell.
	cases := []struct {
		name   string
		change func() (snapshot.Meta, nats.Header, []byte)
		says   string
	}{
		{"flipped payload byte", func() (snapshot.Meta, nats.Header, []byte) {
			d := bytes.Clone(data)
			d[len(d)/2] ^= 1
			return m, m.Header(d), d
		}, "does not open"},
		{"epoch header changed", func() (snapshot.Meta, nats.Header, []byte) {
			m2 := m
			m2.Epoch++
			return m2, m2.Header(data), data
		}, "does not open"},
		{"seq header changed", func() (snapshot.Meta, nats.Header, []byte) {
			m2 := m
			m2.Seq--
			return m2, m2.Header(data), data
		}, "does not open"},
		{"made a tombstone", func() (snapshot.Meta, nats.Header, []byte) {
			m2 := m
			m2.Tombstone = true
			return m2, m2.Header(data), data
		}, "does not open"},
		{"moved to another session's subject", func() (snapshot.Meta, nats.Header, []byte) {
			m2 := m
			m2.Session = other.Session
			return m2, m2.Header(data), data
		}, "does not open"},
		{"key header removed", func() (snapshot.Meta, nats.Header, []byte) {
			m2 := m
			m2.Key = ""
			return m2, m2.Header(data), data
		}, "not sealed"},
		{"unknown key id", func() (snapshot.Meta, nats.Header, []byte) {
			m2 := m
			m2.Key = "k9"
			return m2, m2.Header(data), data
		}, "k9"},
		{"hostile key id", func() (snapshot.Meta, nats.Header, []byte) {
			h2 := m.Header(data)
			h2.Set(snapshot.HeaderKey, "a.b.>")
			return m, h2, data
		}, "Understudy-Key"},
		{"truncated", func() (snapshot.Meta, nats.Header, []byte) {
			d := data[:20]
			return m, m.Header(d), d
		}, "too short"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cm, ch, cd := c.change()
			_, err := parse(k, cm, ch, cd)
			if !errors.Is(err, snapshot.ErrBadMessage) || !strings.Contains(err.Error(), string(cm.Session)) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v: want ErrBadMessage naming session %s and saying %q", err, cm.Session, c.says)
			}
		})
	}
	if _, err := parse(k, m, h, data); err != nil {
		t.Fatalf("the untouched message: %v", err)
	}
}

// TestSealedWithoutKeyAndUnsealedWithKey: a reader without the key cannot
// read a sealed snapshot, and a reader with one refuses unsealed snapshots
// unless the key file allows them.
func TestSealedWithoutKeyAndUnsealedWithKey(t *testing.T) {
	k := keyring(t, "k1")
	m, h, data := sealedMessage(t, k, 1, 1, 1)
	if _, err := parse(nil, m, h, data); !errors.Is(err, snapshot.ErrBadMessage) || !errors.Is(err, snapshot.ErrSealed) ||
		!strings.Contains(err.Error(), "no key file") || !strings.Contains(err.Error(), string(m.Session)) {
		t.Errorf("sealed, read without a key: %v", err)
	}
	if _, err := snapshot.Open(nil, m, data); !errors.Is(err, snapshot.ErrSealed) {
		t.Errorf("Open without a key: %v", err)
	}

	pdata := mustPlain(t, 2)
	plain := snapshot.Meta{Session: modeltest.SessionID(2), Epoch: 1, Seq: 1, Node: "n1", Format: cbor.FormatVersion}
	if _, err := parse(k, plain, plain.Header(pdata), pdata); !errors.Is(err, snapshot.ErrSealed) || !strings.Contains(err.Error(), "not sealed") {
		t.Errorf("unsealed, read with a key: %v", err)
	}
	lenient, err := snapshot.ParseKeyring([]byte(keyFile("k1") + "allow-unsealed\n"))
	if err != nil || !lenient.AllowUnsealed {
		t.Fatalf("allow-unsealed: %v", err)
	}
	if _, err := parse(lenient, plain, plain.Header(pdata), pdata); err != nil {
		t.Errorf("unsealed with allow-unsealed: %v", err)
	}

	// Tombstones are sealed too: an empty plaintext.
	tm := snapshot.Meta{Session: m.Session, Epoch: 1, Seq: 1, Node: "n1", Format: cbor.FormatVersion, Tombstone: true}
	td, key, err := k.Seal(tm, nil)
	if err != nil {
		t.Fatal(err)
	}
	tm.Key = key
	if got, err := parse(k, tm, tm.Header(td), td); err != nil || !got.Tombstone {
		t.Errorf("sealed tombstone: %+v %v", got, err)
	}
}

func mustPlain(t *testing.T, n int) []byte {
	t.Helper()
	run, _, err := modeltest.Drive(context.Background(), modeltest.Engine(), modeltest.SessionID(n), 1, "vehicle")
	if err != nil {
		t.Fatal(err)
	}
	s := run.Session().Clone()
	s.Epoch, s.Seq, s.Node = 1, 1, "n1"
	b, err := cbor.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyFileErrorsNeverShowAKey(t *testing.T) {
	secret := strings.Repeat("ab", 32)
	cases := map[string]string{
		"":                                     "no key",
		"# only a comment\n":                   "no key",
		"k1\n":                                 "line 1",
		"k1 " + secret + " extra\n":            "line 1",
		"k1 " + secret[:62] + "zz\n":           "not hex",
		"k1 " + secret[:32] + "\n":             "16 bytes",
		"a.b " + secret + "\n":                 "key id",
		"k1 " + secret + "\nk1 " + secret:      "twice",
		strings.Repeat("x", 40) + " " + secret: "key id",
	}
	for text, says := range cases {
		_, err := snapshot.ParseKeyring([]byte(text))
		if !errors.Is(err, snapshot.ErrSealed) || !strings.Contains(err.Error(), says) {
			t.Errorf("%.20q: error %v, want it to say %q", text, err, says)
		}
		if err != nil && strings.Contains(err.Error(), secret[:16]) {
			t.Errorf("%.20q: the error shows the key: %v", text, err)
		}
	}
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(keyFile("a", "b")), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := snapshot.LoadKeyring(path)
	if err != nil || k.Current() != "b" {
		t.Fatalf("LoadKeyring: %v %v", k, err)
	}
	if _, err := snapshot.LoadKeyring(path + ".missing"); !errors.Is(err, snapshot.ErrSealed) {
		t.Errorf("missing file: %v", err)
	}
}
