package publisher

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
)

// maxEraseAttempts bounds how often Erase writes its tombstone again when
// another message lands on the session meanwhile.
const maxEraseAttempts = 8

// Erase ends a session for good, whoever owns it and whatever its newest
// message is (a valid snapshot, a fenced or a corrupt one): it publishes a
// tombstone of epoch on top of the session's newest message (or reuses a
// tombstone that is already there), then purges every message of the
// session below it. A session with no message in the stream is
// snapshot.ErrNotFound. The tombstone stays, carrying nothing but the
// session's id and sequence, so that a backup that has not caught up drops
// the session instead of bringing back a snapshot it held; Purge removes
// it later. It returns the tombstone's place.
//
// The caller owns the session for the time it takes (the primary, holding
// the session), or no primary runs (an operator's tool).
func (p *Publisher) Erase(ctx context.Context, id model.SessionID, epoch uint64) (Ack, error) {
	subject, err := p.cfg.Subjects.SessionSubject(string(id))
	if err != nil {
		return Ack{}, fmt.Errorf("erase session %s: %w", id, err)
	}
	st := p.session(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	var ack Ack
	for attempt := 0; ; attempt++ {
		var last, seq uint64
		raw, err := p.stream.GetLastMsgForSubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			p.Forget(id)
			return Ack{}, fmt.Errorf("erase session %s: %w: nothing to erase", id, snapshot.ErrNotFound)
		case err != nil:
			return Ack{}, fmt.Errorf("erase session %s: read its newest message: %w", id, err)
		default:
			last = raw.Sequence
			seq, _ = strconv.ParseUint(raw.Header.Get(snapshot.HeaderSeq), 10, 64)
			// A fenced tombstone (a zombie's) ended nothing: the session
			// lives on below it, and the erase writes a tombstone of its own.
			if top, err := snapshot.FromRaw(p.cfg.Subjects, p.cfg.Sealer, raw); err == nil && top.Tombstone && !p.cfg.Fence.Fenced(top.Epoch, top.StreamSeq) {
				ack = Ack{StreamSeq: last, Duplicate: true}
				p.storedTop(top)
			}
		}
		if ack.StreamSeq != 0 {
			break
		}
		meta := snapshot.Meta{Session: id, Epoch: epoch, Seq: seq, Node: p.cfg.Node, Format: cbor.FormatVersion, Tombstone: true, Prev: last}
		data, err := p.seal(&meta, nil)
		if err != nil {
			return Ack{}, err
		}
		msg := &nats.Msg{Subject: subject, Header: meta.Header(data), Data: data}
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		pa, err := p.js.PublishMsg(pctx, msg)
		cancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			ack = Ack{StreamSeq: pa.Sequence, Duplicate: pa.Duplicate, Bytes: len(data)}
			p.stored(meta, pa.Sequence, data)
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) && attempt < maxEraseAttempts:
			continue // something landed meanwhile: tombstone on top of it
		default:
			return Ack{}, fmt.Errorf("erase session %s: tombstone: %w", id, err)
		}
		break
	}
	if err := p.Purge(ctx, id, ack.StreamSeq-1); err != nil {
		return ack, err
	}
	p.Forget(id)
	return ack, nil
}

// Purge removes every message of session id at or below stream sequence
// upTo: a finished session's history once its retention has passed (upTo
// its tombstone), or what Erase leaves below its tombstone. Messages above
// upTo stay.
func (p *Publisher) Purge(ctx context.Context, id model.SessionID, upTo uint64) error {
	subject, err := p.cfg.Subjects.SessionSubject(string(id))
	if err != nil {
		return fmt.Errorf("purge session %s: %w", id, err)
	}
	if upTo == 0 {
		return nil
	}
	if err := p.stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(upTo+1)); err != nil {
		return fmt.Errorf("purge session %s up to stream seq %d: %w", id, upTo, err)
	}
	return nil
}
