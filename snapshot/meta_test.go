package snapshot_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/snapshot"
)

// atVehicle returns session n driven to the vehicle step, encoded, and
// the meta a primary publishes it with.
func atVehicle(t *testing.T, n int) (*model.Session, []byte, snapshot.Meta) {
	t.Helper()
	run, _, err := modeltest.Drive(context.Background(), modeltest.Engine(), modeltest.SessionID(n), 1, "vehicle")
	if err != nil {
		t.Fatal(err)
	}
	s := run.Session()
	data, err := cbor.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, data, snapshot.Meta{Session: s.ID, Epoch: s.Epoch, Seq: s.Seq, Node: s.Node, Format: cbor.FormatVersion}
}

// Snapshots carry no Nats-Msg-Id now; those stored by earlier versions
// do, and are still read: a Nats-Msg-Id is checked where it is present.
func TestMsgIDOfEarlierVersions(t *testing.T) {
	s, data, m := atVehicle(t, 3)
	h := m.Header(data)
	if h.Get(nats.MsgIdHdr) != "" {
		t.Fatalf("a new snapshot carries Nats-Msg-Id %q", h.Get(nats.MsgIdHdr))
	}
	if _, err := parse(nil, m, h, data); err != nil {
		t.Fatalf("without Nats-Msg-Id: %v", err)
	}
	h.Set(nats.MsgIdHdr, snapshot.MsgID(s.ID, s.Epoch, s.Seq, false, data))
	if _, err := parse(nil, m, h, data); err != nil {
		t.Fatalf("with the Nats-Msg-Id an earlier version wrote: %v", err)
	}
	h.Set(nats.MsgIdHdr, snapshot.MsgID(s.ID, s.Epoch, s.Seq+1, false, data))
	if _, err := parse(nil, m, h, data); !errors.Is(err, snapshot.ErrBadMessage) {
		t.Fatalf("with a Nats-Msg-Id that does not match: %v, want ErrBadMessage", err)
	}
}

// A snapshot says in a header whether its application had finished; a
// header that says anything else is a bad message.
func TestFinishedHeader(t *testing.T) {
	_, data, m := atVehicle(t, 4)
	m.Finished = true
	h := m.Header(data)
	got, err := parse(nil, m, h, data)
	if err != nil || !got.Finished {
		t.Fatalf("finished: %+v %v", got, err)
	}
	m.Finished = false
	if got, err := parse(nil, m, m.Header(data), data); err != nil || got.Finished {
		t.Fatalf("not finished: %+v %v", got, err)
	}
	h.Set(snapshot.HeaderFinished, "yes")
	if _, err := parse(nil, m, h, data); !errors.Is(err, snapshot.ErrBadMessage) {
		t.Fatalf("finished %q: %v, want ErrBadMessage", "yes", err)
	}
}
