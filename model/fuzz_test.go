package model_test

import (
	"encoding/base32"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"understudy/model"
	"understudy/model/modeltest"
)

// FuzzParseSessionID feeds ParseSessionID arbitrary text, as it arrives in
// a cookie or on a command line. Whatever it accepts is a canonical id
// that is safe in a NATS subject and a URL (26 characters of a-z and 2-7,
// and the one spelling of its 128 bits); whatever it refuses, it refuses
// with ErrBadSessionID and an error that quotes only a short prefix (a
// 10 KB cookie makes an error of a line, not of 10 KB).
func FuzzParseSessionID(f *testing.F) {
	for _, s := range []string{
		string(modeltest.SessionID(1)), string(modeltest.SessionID(2))[:25] + "b", "", ".", "*", ">", "a.b.>",
		"understudy.sess.>", "aaaaaaaaaaaaaaaaaaaaaaaaa*", "aaaaaaaaaaaaaaaaaaaaaaaa a", "\x00\x01\x7f", "é",
		strings.Repeat("a", 26), strings.Repeat("7", 26), strings.Repeat("z", 10<<10), "AAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := model.ParseSessionID(s)
		if err != nil {
			if id != "" || !errors.Is(err, model.ErrBadSessionID) {
				t.Fatalf("%q: %q, %v", s, id, err)
			}
			// At most 32 bytes of the input, each escaped to 4 at worst.
			if len(err.Error()) > 256 {
				t.Fatalf("%q: an error of %d bytes: %.80q", s, len(err.Error()), err)
			}
			return
		}
		if string(id) != s || len(s) != model.SessionIDLen {
			t.Fatalf("%q accepted as %q", s, id)
		}
		var b [16]byte
		for i := range s {
			c := s[i]
			if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
				t.Fatalf("%q accepted with byte %q", s, c)
			}
		}
		// One spelling: the id of its own bits.
		raw, err := decodeID(s)
		if err != nil {
			t.Fatal(err)
		}
		copy(b[:], raw)
		if again := model.NewSessionID(b); again != id {
			t.Fatalf("%q is not canonical: its bits spell %q", s, again)
		}
	})
}

// FuzzSubmit feeds the engine arbitrary form bodies, as the node parses
// them from a POST, at every page of the quote and at stale or future
// sequences; a body that asks for it (_action=back, or change with
// _change) goes to Back or Change, as the node sends it. A submission is
// applied (the next page renders, and the session's data materializes
// again), refused as invalid with a message per field of the page, or
// refused with an error that names the session; nothing panics.
func FuzzSubmit(f *testing.F) {
	eng := modeltest.Engine()
	stops := []string{"applicant", "vehicle", "drivers/driver/who", "drivers/driver/more", "payment/method", "payment/card/details", "confirm", ""}
	runs := make([]*model.Run, len(stops))
	fields := make([]map[string]bool, len(stops))
	for i, stop := range stops {
		run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(i+1), 2, stop)
		if err != nil {
			f.Fatal(err)
		}
		runs[i] = run
		pg, err := eng.Page(ctx, run)
		if err != nil {
			f.Fatal(err)
		}
		fields[i] = map[string]bool{}
		for _, fd := range pg.Fields {
			fields[i][fd.Name] = true
		}
		if stop != "" {
			f.Add(uint8(i), int8(0), modeltest.Answers(stop, 2, 1).Encode())
		}
	}
	for _, body := range []string{
		"", "name=&email=", "name=%00%ff&born=9999-99-99", "born=1900-01-01&born=2020-01-01", "mileage=-1&car=v9",
		"mileage=99999999999999999999&years=1e9", "number=4111111111111111&expires=1999-01-01", "agree=maybe",
		"car=../../etc/passwd", "plan=" + strings.Repeat("x", 5000), "%zz=1&a;b=2", "another=on&another=off",
		"_action=back", "_action=change&_change=2", "_action=change&_change=99999999999", "born-day=31&born-month=2&born-year=1985",
		"born-day=1&born-year=85", "born=1985-12-10&born-day=x",
	} {
		f.Add(uint8(1), int8(0), body)
		f.Add(uint8(3), int8(0), body)
		f.Add(uint8(5), int8(-1), body)
	}
	f.Fuzz(func(t *testing.T, at uint8, delta int8, body string) {
		i := int(at) % len(runs)
		run := runs[i]
		values, err := url.ParseQuery(body)
		if err != nil && values == nil {
			return // the node answers 400 before the engine sees it
		}
		seq := run.Seq() + uint64(int64(delta))
		in := model.Input{Seq: seq, Values: values, Now: modeltest.Epoch.Add(time.Hour), Node: "n1", Epoch: 1}
		var next *model.Run
		switch values.Get("_action") {
		case "back":
			next, err = eng.Back(ctx, run, in)
		case "change":
			next, err = eng.Change(ctx, run, in, values.Get("_change"))
		default:
			next, err = eng.Submit(ctx, run, in)
		}
		var bad *model.InvalidInputError
		switch {
		case err == nil:
			if next.Seq() != run.Seq()+1 || seq != run.Seq() {
				t.Fatalf("applied at seq %d of a run at %d: now %d", seq, run.Seq(), next.Seq())
			}
			if _, err := eng.Page(ctx, next); err != nil {
				t.Fatalf("the next page: %v", err)
			}
			eng.Answers(ctx, next)
			if _, err := eng.Materialize(ctx, next.Session().Clone()); err != nil {
				t.Fatalf("the session's data does not materialize: %v", err)
			}
		case errors.As(err, &bad):
			if len(bad.Fields) == 0 || bad.Session != run.ID() {
				t.Fatalf("invalid input without fields: %+v", bad)
			}
			for name := range bad.Fields {
				if !fields[i][name] {
					t.Fatalf("a message for %q, not a field of the page", name)
				}
			}
		default:
			if !strings.Contains(err.Error(), string(run.ID())) {
				t.Fatalf("the error does not name the session: %v", err)
			}
			switch {
			case errors.Is(err, model.ErrStaleInteraction), errors.Is(err, model.ErrFinished),
				errors.Is(err, model.ErrStepFailed), errors.Is(err, model.ErrLimit), errors.Is(err, model.ErrCannotMove):
			default:
				t.Fatalf("an unexpected error: %v", err)
			}
		}
		// The run given is never changed.
		if run.Seq() != runs[i].Seq() {
			t.Fatal("the old run changed")
		}
	})
}

// decodeID decodes an id's text with the alphabet ids are written in.
func decodeID(s string) ([]byte, error) {
	return base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).DecodeString(s)
}
