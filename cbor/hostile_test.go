package cbor_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"

	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
)

const marker = "MARKER-VALUE"

// withMarker returns a valid snapshot whose price step holds params
// {"a": 1, "b": marker}, and the offset of the marker's encoding, so a test
// can put any bytes where a value belongs.
func withMarker(t *testing.T) []byte {
	t.Helper()
	run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(77), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	s := run.Session().Clone()
	for _, st := range s.Pool.Simple {
		if st.Path == "price" {
			st.Params = model.ParamsOf(map[string]model.Value{"a": model.IntVal(1), "b": model.StringVal(marker)})
		}
	}
	b, err := cbor.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replace swaps the first occurrence of old for new.
func replace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	o, n := mustHex(t, old), mustHex(t, new)
	i := bytes.Index(b, o)
	if i < 0 {
		t.Fatalf("%s not in the snapshot", old)
	}
	return append(append(append([]byte{}, b[:i]...), n...), b[i+len(o):]...)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var markerHex = hex.EncodeToString(append([]byte{0x60 + byte(len(marker))}, marker...))

func nested(open string, depth int, leaf string) string {
	return strings.Repeat(open, depth) + leaf
}

func TestHostileSnapshots(t *testing.T) {
	good := withMarker(t)
	id := string(modeltest.SessionID(77))
	cases := []struct {
		name string
		data []byte
		want error
		says string
	}{
		{"empty", nil, cbor.ErrTruncated, ""},
		{"not an array", []byte{0xa0}, cbor.ErrMalformed, "major type"},
		{"format version 2", replace(t, good, "90 01", "90 02"), cbor.ErrFormat, "2"},
		{"bad session id", replace(t, good, "78 1a", "78 1a"+hex.EncodeToString([]byte("a.b.>"))), cbor.ErrMalformed, ""},
		{"trailing bytes", append(append([]byte{}, good...), 0x00), cbor.ErrMalformed, "after the snapshot"},
		{"float", replace(t, good, markerHex, "fb 3ff0000000000000"), cbor.ErrMalformed, "float"},
		{"undefined", replace(t, good, markerHex, "f7"), cbor.ErrMalformed, "simple value"},
		{"unknown tag", replace(t, good, markerHex, "d8 20 60"), cbor.ErrUnknownTag, "32"},
		{"self-described tag", replace(t, good, markerHex, "d9 d9f7 01"), cbor.ErrUnknownTag, "55799"},
		{"epoch time tag", replace(t, good, markerHex, "c1 1a 5f5e1000"), cbor.ErrUnknownTag, ""},
		{"indefinite list", replace(t, good, markerHex, "9f 01 ff"), cbor.ErrNonCanonical, "indefinite"},
		{"indefinite text", replace(t, good, markerHex, "7f 61 61 ff"), cbor.ErrNonCanonical, "indefinite"},
		{"long head", replace(t, good, markerHex, "18 05"), cbor.ErrNonCanonical, "argument 5"},
		{"duplicate key", replace(t, good, "61 62"+markerHex, "61 61 01"), cbor.ErrDuplicateKey, `"a"`},
		{"unordered keys", replace(t, good, "61 61 01 61 62"+markerHex, "61 62 01 61 61 01"), cbor.ErrNonCanonical, "out of order"},
		{"invalid UTF-8", replace(t, good, markerHex, "62 ff fe"), cbor.ErrMalformed, "UTF-8"},
		{"huge list", replace(t, good, markerHex, "9b 7fffffffffffffff"), cbor.ErrTooLarge, "limit"},
		{"huge map", replace(t, good, markerHex, "bb 7fffffffffffffff"), cbor.ErrTooLarge, "limit"},
		{"list longer than the bytes", replace(t, good, markerHex, "99 2000"), cbor.ErrTruncated, "8192 items"},
		{"huge string", replace(t, good, markerHex, "7a ffffffff"), cbor.ErrTruncated, "left"},
		{"long head string", replace(t, good, markerHex, "7b 00000000ffffffff"), cbor.ErrNonCanonical, "argument"},
		{"huge byte string", replace(t, good, markerHex, "5b 7fffffffffffffff"), cbor.ErrTruncated, "left"},
		{"deep nesting", replace(t, good, markerHex, nested("81", 100, "01")), cbor.ErrTooLarge, "deeper"},
		{"deep maps", replace(t, good, markerHex, nested("a1 61 6b", 40, "01")), cbor.ErrTooLarge, "deeper"},
		{"int out of range", replace(t, good, markerHex, "1b ffffffffffffffff"), cbor.ErrMalformed, "int64"},
		{"decimal exponent", replace(t, good, markerHex, "c4 82 01 01"), cbor.ErrMalformed, "exponent"},
		{"decimal scale 40", replace(t, good, markerHex, "c4 82 38 27 01"), cbor.ErrMalformed, "exponent"},
		{"time without seconds", replace(t, good, markerHex, "d9 03e9 a1 28 01"), cbor.ErrMalformed, "time key"},
		{"time with 1e9 ns", replace(t, good, markerHex, "d9 03e9 a2 01 00 28 1a 3b9aca00"), cbor.ErrMalformed, "nanoseconds"},
		{"reference of 2", replace(t, good, markerHex, "d9 beef 82 61 61 61 62"), cbor.ErrMalformed, "entity reference"},
		{"reserved head", replace(t, good, markerHex, "1c"), cbor.ErrMalformed, "reserved"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := cbor.Decode(c.data)
			var de *cbor.DecodeError
			if s != nil || !errors.Is(err, c.want) || !errors.As(err, &de) {
				t.Fatalf("got %v, %v; want %v", s, err, c.want)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			// Once the envelope is read, the error names the session.
			if len(c.data) > 40 && c.want != cbor.ErrFormat && !strings.Contains(c.name, "session id") && de.Session != model.SessionID(id) {
				t.Errorf("error %q does not name session %s", err, id)
			}
			if strings.Contains(err.Error(), "decoder panic") {
				t.Fatalf("decoder panicked: %v", err)
			}
		})
	}
}

func TestHostileLimits(t *testing.T) {
	good := withMarker(t)
	if _, err := cbor.DecodeLimits(good, cbor.Limits{MaxBytes: len(good) - 1}); !errors.Is(err, cbor.ErrTooLarge) {
		t.Errorf("over MaxBytes: %v", err)
	}
	if _, err := cbor.DecodeLimits(good, cbor.Limits{MaxSteps: 10}); !errors.Is(err, cbor.ErrTooLarge) {
		t.Errorf("over MaxSteps: %v", err)
	}
	long := replace(t, good, markerHex, "99 0100"+strings.Repeat("01", 256))
	if _, err := cbor.DecodeLimits(long, cbor.Limits{MaxItems: 255}); !errors.Is(err, cbor.ErrTooLarge) {
		t.Errorf("over MaxItems: %v", err)
	}
	if _, err := cbor.DecodeLimits(long, cbor.Limits{MaxItems: 256}); err != nil {
		t.Errorf("at MaxItems: %v", err)
	}
	// A snapshot for another session decodes as that session: the caller
	// compares the id with the subject it came from.
	if s, err := cbor.Decode(good); err != nil || s.ID != modeltest.SessionID(77) {
		t.Fatalf("%v %v", s, err)
	}
}

// TestHugeDeclaredLengthsAllocateNothing checks that a declared length is
// refused before anything is allocated for it.
func TestHugeDeclaredLengthsAllocateNothing(t *testing.T) {
	good := withMarker(t)
	hostile := [][]byte{
		replace(t, good, markerHex, "9a 7fffffff"),
		replace(t, good, markerHex, "ba 7fffffff"),
		replace(t, good, markerHex, "7a 7fffffff"),
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		for _, h := range hostile {
			if _, err := cbor.Decode(h); err == nil {
				t.Fatal("accepted")
			}
		}
	}
	runtime.ReadMemStats(&after)
	perDecode := (after.TotalAlloc - before.TotalAlloc) / 300
	if limit := uint64(64 * len(good)); perDecode > limit {
		t.Errorf("a hostile decode allocated %d bytes, more than %d", perDecode, limit)
	}
}

func TestEveryTruncationAndFlipIsSafe(t *testing.T) {
	good := withMarker(t)
	for n := range len(good) {
		if s, err := cbor.Decode(good[:n]); err == nil || s != nil {
			t.Fatalf("a %d-byte prefix decoded", n)
		} else if strings.Contains(err.Error(), "decoder panic") {
			t.Fatal(err)
		}
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0xff
		checkDecodeOrRefuse(t, bad)
		bad[i] ^= 0xfe // flips the low bit of the original
		checkDecodeOrRefuse(t, bad)
	}
}

// checkDecodeOrRefuse is the property every input must have: Decode either
// refuses it without panicking, or accepts it and re-encodes it to exactly
// the same bytes (the format has one encoding per session).
func checkDecodeOrRefuse(t testing.TB, data []byte) {
	s, err := cbor.Decode(data)
	if err != nil {
		if strings.Contains(err.Error(), "decoder panic") {
			t.Fatalf("%x: %v", data, err)
		}
		var de *cbor.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("not a *DecodeError: %v", err)
		}
		return
	}
	again, err := cbor.Marshal(s)
	if err != nil {
		t.Fatalf("accepted but cannot re-encode: %v", err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("accepted %x\nbut re-encodes as %x", data, again)
	}
}
