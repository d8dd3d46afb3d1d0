package cbor_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"understudy/cbor"
	"understudy/model/modeltest"
)

// FuzzDecode feeds Decode arbitrary bytes. Every input is either refused
// with a *DecodeError or accepted and re-encoded to exactly the same bytes;
// an accepted session materializes or is refused, never panics. Memory stays
// bounded because every declared length is checked before allocation (see
// TestHugeDeclaredLengthsAllocateNothing).
func FuzzDecode(f *testing.F) {
	for _, s := range sessions(f) {
		b, err := cbor.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, h := range []string{"", "90", "9001", "a0", "9f01ff", "d9d9f7", "9b7fffffffffffffff", "7a7fffffff"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	eng := modeltest.Engine()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeOrRefuse(t, data)
		if s, err := cbor.Decode(data); err == nil {
			if _, err := eng.Materialize(ctx, s); err != nil && !strings.Contains(err.Error(), string(s.ID)) {
				t.Fatalf("materialize error does not name the session: %v", err)
			}
		}
	})
}
