package snapshot_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"understudy/cbor"
	"understudy/model/modeltest"
	"understudy/snapshot"
)

// TestRestore: a stored snapshot, sealed or not, becomes its session and
// its application objects; what cannot says which session and why, by an
// error each caller can tell apart.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	k := keyring(t, "k1")
	m, _, sealed := sealedMessage(t, k, 1, 1, 1)
	plain := snapshot.Stored{Meta: snapshot.Meta{Session: modeltest.SessionID(2), StreamSeq: 9}, Data: mustPlain(t, 2)}

	for _, c := range []struct {
		name   string
		sealer snapshot.Sealer
		st     snapshot.Stored
	}{{"sealed", k, snapshot.Stored{Meta: m, Data: sealed}}, {"plain", nil, plain}} {
		run, err := snapshot.Restore(ctx, modeltest.Engine(), c.sealer, c.st)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if run.ID() != c.st.Session || run.Seq() != 1 {
			t.Fatalf("%s: restored session %s at seq %d, want %s at seq 1", c.name, run.ID(), run.Seq(), c.st.Session)
		}
	}

	moved := plain
	moved.Session = modeltest.SessionID(3)
	garbage := plain
	garbage.Data = []byte{0xff, 0x00}
	tomb := plain
	tomb.Tombstone, tomb.Data = true, nil
	var de *cbor.DecodeError
	for _, c := range []struct {
		name   string
		sealer snapshot.Sealer
		st     snapshot.Stored
		is     func(error) bool
	}{
		{"sealed, no key", nil, snapshot.Stored{Meta: m, Data: sealed}, func(err error) bool { return errors.Is(err, snapshot.ErrSealed) }},
		{"not decodable", nil, garbage, func(err error) bool { return errors.As(err, &de) }},
		{"another session's", nil, moved, func(err error) bool { return errors.Is(err, snapshot.ErrBadMessage) }},
		{"a tombstone", nil, tomb, func(err error) bool { return errors.Is(err, snapshot.ErrNotFound) }},
	} {
		_, err := snapshot.Restore(ctx, modeltest.Engine(), c.sealer, c.st)
		if err == nil || !c.is(err) || !strings.Contains(err.Error(), string(c.st.Session)) {
			t.Errorf("%s: got %v, want the error that says so, naming session %s", c.name, err, c.st.Session)
		}
	}
}
