package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/group/protocol"
)

// writeTimeout bounds an attempt to claim or release the entry; a renewal
// is bounded by the lease, since one answered later renews nothing.
const writeTimeout = 2 * time.Second

// readTimeout bounds a read of the entry or the stream made for a
// decision.
const readTimeout = 2 * time.Second

// attempt makes one attempt of a write the core asked for and says what
// became of it. On a conflict it reads what the bucket's leader holds, so
// that the core can tell its own earlier attempt from another owner.
func (m *Member) attempt(w protocol.Write) protocol.WriteResult {
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(m.cfg.Node, w)
	}
	e := w.Entry
	e.Renewed = time.Now().UTC()
	timeout := writeTimeout
	if w.Kind == protocol.KindRenew {
		timeout = m.cfg.Lease
	}
	ctx, cancel := context.WithTimeout(m.ctx, timeout)
	defer cancel()
	var rev uint64
	var err error
	sent := time.Now()
	if w.Rev == 0 {
		rev, err = m.kv.Create(ctx, m.cfg.Group, e.Encode())
	} else {
		rev, err = m.kv.Update(ctx, m.cfg.Group, e.Encode(), w.Rev)
	}
	if w.Kind == protocol.KindRenew && m.hooks.Renewed != nil {
		m.hooks.Renewed(time.Since(sent), err == nil)
	}
	res := protocol.WriteResult{ID: w.ID}
	switch {
	case err == nil:
		res.Outcome, res.Rev = protocol.Landed, rev
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists):
		res.Outcome = protocol.Conflict
		rctx, rcancel := context.WithTimeout(m.ctx, readTimeout)
		cur, rerr := m.readEntry(rctx)
		rcancel()
		switch {
		case rerr == nil:
			res.Current, res.Exists = cur, true
		case errors.Is(rerr, protocol.ErrNoEntry):
			res.Current = Entry{Revision: cur.Revision}
		default:
			res.ReadFailed = true
		}
	case notSent(err):
		res.Outcome = protocol.NotSent
	default:
		res.Outcome = protocol.Unknown
	}
	if res.Outcome != protocol.Landed {
		m.log.Debug("group entry write", "kind", w.Kind, "attempt", w.Attempt, "epoch", w.Entry.Epoch, "outcome", res.Outcome, "err", err)
	}
	return res
}

// notSent reports an error of a write that is known not to have been
// stored: it was never sent (disconnected, with the reconnect buffer off),
// nobody took it, or the server refused it with an answer.
func notSent(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	case errors.As(err, &apiErr):
		return true
	}
	return false
}

// readEntry reads the group entry from the bucket's stream leader. A key
// value Get may be answered by any replica (buckets allow direct gets), and
// a lagging one could make a spurious conflict look real; decisions about
// a conflict read here. A missing entry is ErrNoEntry, with the revision
// of the delete marker if there is one.
func (m *Member) readEntry(ctx context.Context) (Entry, error) {
	bucket := m.cfg.Subjects.GroupsBucket()
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + m.cfg.Group})
	msg, err := m.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return Entry{}, fmt.Errorf("read group %s from the leader: %w", m.cfg.Group, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return Entry{}, fmt.Errorf("read group %s from the leader: %w", m.cfg.Group, err)
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 {
			return Entry{}, protocol.ErrNoEntry
		}
		return Entry{}, fmt.Errorf("read group %s from the leader: %s", m.cfg.Group, resp.Error.Description)
	}
	if resp.Message == nil || len(resp.Message.Data) == 0 {
		var rev uint64
		if resp.Message != nil {
			rev = resp.Message.Seq
		}
		return Entry{Revision: rev}, protocol.ErrNoEntry // a delete or purge marker
	}
	return protocol.DecodeEntry(resp.Message.Data, resp.Message.Seq)
}

// ping asks a node's control subject whether its connection is alive. With
// a single server "no responders" means it is gone; a live node answers at
// once; a paused one, or one killed a moment ago whose subscription the
// server has not dropped yet, stays silent (the core asks again).
func (m *Member) ping(node string) protocol.PingResult {
	subj, err := m.cfg.Subjects.NodeSubject(node)
	if err != nil {
		return protocol.Answered // not a node name: prove nothing
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.PingTimeout)
	defer cancel()
	_, err = m.nc.RequestWithContext(ctx, subj, nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return protocol.NoResponders
	case err == nil:
		return protocol.Answered
	}
	return protocol.Silent
}

// lastSeq reads the session stream's last sequence (from its leader).
func (m *Member) lastSeq() (uint64, error) {
	ctx, cancel := context.WithTimeout(m.ctx, readTimeout)
	defer cancel()
	info, err := m.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// drain waits until this node's copy holds the stream up to seq, bounded
// by the failover timeout (a drain stuck behind a NATS leader election
// must not leave the signal unanswered; the gateway signals again).
func (m *Member) drain(seq uint64) error {
	if m.hooks.Drain == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.FailoverTimeout)
	defer cancel()
	return m.hooks.Drain(ctx, seq)
}
