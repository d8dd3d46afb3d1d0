package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker"
	"understudy/cbor"
	"understudy/model"
)

// Headers every snapshot message carries, so tools and readers can judge it
// without decoding it.
const (
	HeaderEpoch     = "Understudy-Epoch"     // epoch of the node that wrote it
	HeaderSeq       = "Understudy-Seq"       // the session's interaction sequence
	HeaderNode      = "Understudy-Node"      // the node that wrote it
	HeaderFormat    = "Understudy-Format"    // snapshot format version
	HeaderPrev      = "Understudy-Prev"      // stream sequence of the previous message of the session (the expected last subject sequence it was published with), 0 if none
	HeaderTombstone = "Understudy-Tombstone" // "1": the session ended; the payload is empty
	HeaderKey       = "Understudy-Key"       // the id of the key that sealed the payload (see Sealer); absent if not sealed
	HeaderFinished  = "Understudy-Finished"  // "1": the session's application has finished (a hint for sweeping; the payload is the truth)
)

// Meta is what a snapshot message says about itself.
type Meta struct {
	Session   model.SessionID
	Epoch     uint64
	Seq       uint64 // interaction sequence
	Node      string
	Format    uint64
	Prev      uint64 // stream sequence of the session's previous message
	Tombstone bool
	// Finished says the session's application had finished: lets a new
	// primary find finished sessions to end without decoding every one.
	// A hint only: the payload is the truth.
	Finished  bool
	Key       string    // the id of the key that sealed the payload; "" if not sealed
	StreamSeq uint64    // where the stream stored it (0 before it is stored)
	Time      time.Time // when the stream stored it
	Size      int       // payload bytes, as stored (sealed)
}

// Header returns the headers of a snapshot message with this meta and
// payload.
//
// No Nats-Msg-Id: the expected last subject sequence every publish carries
// already makes a retry that landed a conflict, which the publisher
// resolves by reading the stream (a retry of the same bytes is its own
// snapshot stored); the server's duplicate window only cost time and
// memory on every publish. Snapshots stored by earlier versions carry one,
// and ParseMeta still checks it.
func (m Meta) Header(data []byte) nats.Header {
	h := make(nats.Header, 8)
	h.Set(HeaderEpoch, strconv.FormatUint(m.Epoch, 10))
	h.Set(HeaderSeq, strconv.FormatUint(m.Seq, 10))
	h.Set(HeaderNode, m.Node)
	h.Set(HeaderFormat, strconv.FormatUint(m.Format, 10))
	h.Set(HeaderPrev, strconv.FormatUint(m.Prev, 10))
	if m.Tombstone {
		h.Set(HeaderTombstone, "1")
	}
	if m.Finished {
		h.Set(HeaderFinished, "1")
	}
	if m.Key != "" {
		h.Set(HeaderKey, m.Key)
	}
	return h
}

// MsgID is the Nats-Msg-Id that snapshots stored by earlier versions carry:
// session, epoch and sequence, and a hash of the payload. ParseMeta checks
// it where a message has one.
func MsgID(id model.SessionID, epoch, seq uint64, tombstone bool, data []byte) string {
	sum := sha256.Sum256(data)
	kind := "s"
	if tombstone {
		kind = "t"
	}
	return fmt.Sprintf("%s.%d.%d.%s.%s", id, epoch, seq, kind, hex.EncodeToString(sum[:12]))
}

// ParseMeta reads the meta of a stored snapshot message and checks it
// against its subject, its Nats-Msg-Id if it has one, and its payload's
// envelope. A sealed
// payload is opened with sealer to look at its envelope (and must open:
// see Sealer); sealer nil reads unsealed payloads only. The plaintext is
// not kept: Open gives it again when it is needed.
func ParseMeta(subjects broker.Subjects, sealer Sealer, subject string, h nats.Header, data []byte, streamSeq uint64, stored time.Time) (Meta, error) {
	raw, err := subjects.SessionID(subject)
	if err != nil {
		return Meta{}, fmt.Errorf("stream seq %d: subject %q: %w: %w", streamSeq, trunc(subject), ErrBadMessage, err)
	}
	id, err := model.ParseSessionID(raw)
	if err != nil {
		return Meta{}, fmt.Errorf("stream seq %d: %w: %w", streamSeq, ErrBadMessage, err)
	}
	m := Meta{Session: id, StreamSeq: streamSeq, Time: stored, Size: len(data), Node: h.Get(HeaderNode)}
	bad := func(format string, args ...any) (Meta, error) {
		return m, fmt.Errorf("session %s stream seq %d: %w: %s", id, streamSeq, ErrBadMessage, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct {
		name string
		dst  *uint64
	}{{HeaderEpoch, &m.Epoch}, {HeaderSeq, &m.Seq}, {HeaderFormat, &m.Format}, {HeaderPrev, &m.Prev}} {
		if *f.dst, err = strconv.ParseUint(h.Get(f.name), 10, 64); err != nil {
			return bad("header %s %q", f.name, trunc(h.Get(f.name)))
		}
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{HeaderTombstone, &m.Tombstone}, {HeaderFinished, &m.Finished}} {
		switch h.Get(f.name) {
		case "":
		case "1":
			*f.dst = true
		default:
			return bad("header %s %q", f.name, trunc(h.Get(f.name)))
		}
	}
	if key := h.Get(HeaderKey); key != "" {
		if broker.ValidToken(key) != nil || len(key) > MaxKeyIDLen {
			return bad("header %s %q", HeaderKey, trunc(key))
		}
		m.Key = key
	}
	if got := h.Get(nats.MsgIdHdr); got != "" && got != MsgID(id, m.Epoch, m.Seq, m.Tombstone, data) {
		return bad("Nats-Msg-Id %q does not match the payload", trunc(got))
	}
	plain := data
	if m.Key != "" || sealer != nil {
		if plain, err = open(sealer, m, data); err != nil {
			return m, fmt.Errorf("session %s stream seq %d: %w: %w", id, streamSeq, ErrBadMessage, err)
		}
	}
	if m.Tombstone {
		if len(plain) != 0 {
			return bad("tombstone with a %d-byte payload", len(plain))
		}
		return m, nil
	}
	env, err := cbor.PeekEnvelope(plain)
	if err != nil {
		return m, fmt.Errorf("session %s stream seq %d: %w: %w", id, streamSeq, ErrBadMessage, err)
	}
	switch {
	case env.Session != id:
		return bad("payload is session %s", env.Session)
	case env.Epoch != m.Epoch || env.Seq != m.Seq || env.Node != m.Node || env.Format != m.Format:
		return bad("headers say epoch %d seq %d node %q format %d, payload epoch %d seq %d node %q format %d",
			m.Epoch, m.Seq, trunc(m.Node), m.Format, env.Epoch, env.Seq, trunc(env.Node), env.Format)
	}
	return m, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
