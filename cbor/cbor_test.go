package cbor_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	fx "github.com/fxamacker/cbor/v2"

	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
)

var ctx = context.Background()

// sessions returns quotes stopped at every kind of place: before the first
// interaction, mid-loop, three applications deep, finished.
func sessions(t testing.TB) map[string]*model.Session {
	t.Helper()
	out := map[string]*model.Session{}
	for name, c := range map[string]struct {
		drivers int
		stop    string
	}{
		"start":    {1, "applicant"},
		"loop":     {3, "drivers/driver/more"},
		"deep":     {12, "payment/card/details"},
		"finished": {2, ""},
	} {
		run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(len(out)+1), c.drivers, c.stop)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = run.Session()
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	eng := modeltest.Engine()
	for name, s := range sessions(t) {
		t.Run(name, func(t *testing.T) {
			b, err := cbor.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			back, err := cbor.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(s) {
				t.Fatal("decoded session differs")
			}
			again, err := cbor.Marshal(back)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs (%v)", err)
			}
			env, err := cbor.PeekEnvelope(b)
			if err != nil || env.Session != s.ID || env.Seq != s.Seq || env.Epoch != s.Epoch || !env.Time.Equal(s.Updated) || len(env.Apps) == 0 {
				t.Fatalf("envelope %+v, %v", env, err)
			}
			run, err := eng.Materialize(ctx, back)
			if err != nil {
				t.Fatal(err)
			}
			if !run.Session().Equal(s) {
				t.Fatal("materialized session differs")
			}
		})
	}
}

// TestIndependentDecoderAgrees checks the hand-written codec against
// fxamacker/cbor: its strict decoder accepts every snapshot, and its core
// deterministic encoder writes the same bytes back.
func TestIndependentDecoderAgrees(t *testing.T) {
	dm, err := fx.DecOptions{
		DupMapKey:       fx.DupMapKeyEnforcedAPF,
		IndefLength:     fx.IndefLengthForbidden,
		MaxNestedLevels: 64,
	}.DecMode()
	if err != nil {
		t.Fatal(err)
	}
	em, err := fx.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range sessions(t) {
		b, err := cbor.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := dm.Wellformed(b); err != nil {
			t.Errorf("%s: not well-formed for fxamacker: %v", name, err)
		}
		var v any
		if err := dm.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: fxamacker refuses: %v", name, err)
		}
		again, err := em.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Errorf("%s: fxamacker's deterministic encoding differs:\n ours %x\n its  %x", name, b, again)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/golden-v1.cbor")

// TestGolden keeps format version 1 readable: the golden file was written by
// the first version of this package and must decode, materialize and
// re-encode to the same bytes in every later version.
func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "golden-v1.cbor")
	run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(42), 3, "payment/card/details")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		b, err := cbor.Marshal(run.Session())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cbor.Decode(golden)
	if err != nil {
		t.Fatalf("golden snapshot no longer decodes: %v", err)
	}
	if again, err := cbor.Marshal(s); err != nil || !bytes.Equal(again, golden) {
		t.Fatalf("golden snapshot re-encodes differently (%v)", err)
	}
	if _, err := modeltest.Engine().Materialize(ctx, s); err != nil {
		t.Fatalf("golden snapshot no longer materializes: %v", err)
	}
	if s.ID != modeltest.SessionID(42) || s.App != "car-quote" || s.Version != 3 || s.Seq == 0 {
		t.Errorf("golden envelope: %s %s@%d seq %d", s.ID, s.App, s.Version, s.Seq)
	}
}

func TestEncodeRefusesInvalidUTF8(t *testing.T) {
	s := sessions(t)["loop"].Clone()
	for _, st := range s.Pool.Simple {
		st.Params = model.Params{{Name: "bad", Value: model.StringVal("\xff")}}
		break
	}
	_, err := cbor.Marshal(s)
	if !errors.Is(err, cbor.ErrEncode) || !bytes.Contains([]byte(err.Error()), []byte(s.ID)) {
		t.Fatalf("got %v, want ErrEncode naming the session", err)
	}
}
