package node

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/model"
	"understudy/snapshot"
)

// EraseRequest asks the primary, on the erase control subject
// (broker.Subjects.EraseSubject), to erase a session everywhere: from its
// memory, from the backups (a tombstone) and from the stream (a purge).
// Only the serving primary answers; replay erase sends it.
type EraseRequest struct {
	Session string `json:"session"`
}

// EraseReply is the primary's answer to an EraseRequest.
type EraseReply struct {
	Node    string `json:"node"`
	Session string `json:"session"`
	// Live is set when the session was live in the primary's memory.
	Live bool `json:"live,omitempty"`
	// Tombstone is the stream sequence of the session's tombstone, the only
	// message of it left (until its retention passes); 0 when the stream
	// held nothing of it.
	Tombstone uint64 `json:"tombstone,omitempty"`
	Error     string `json:"error,omitempty"`
}

// eraseTimeout bounds one erase.
const eraseTimeout = 15 * time.Second

// onErase answers erase requests while this node is the serving primary.
func (n *Node) onErase(msg *nats.Msg) {
	if !n.serving.Load() || n.draining.Load() {
		return // the primary answers; the tool finds no responder otherwise
	}
	// Background work: the shutdown cancels it and waits for it.
	n.background(func(ctx context.Context) {
		var req EraseRequest
		var rep EraseReply
		if err := json.Unmarshal(msg.Data, &req); err != nil {
			rep = EraseReply{Node: n.cfg.Node, Error: "erase request: " + err.Error()}
		} else if id, err := model.ParseSessionID(req.Session); err != nil {
			rep = EraseReply{Node: n.cfg.Node, Error: err.Error()}
		} else {
			ctx, cancel := context.WithTimeout(ctx, eraseTimeout)
			rep = n.erase(ctx, id)
			cancel()
		}
		data, _ := json.Marshal(rep)
		if err := msg.Respond(data); err != nil {
			n.log.Warn("answer an erase request", "err", err)
		}
	})
}

// erase ends a session for good: it waits for the session's request in
// flight, if any, writes a tombstone over whatever the stream holds of it
// and purges the rest, and forgets it: its user gets the "session ended"
// page, and its id is not given to a new session.
func (n *Node) erase(ctx context.Context, id model.SessionID) EraseReply {
	rep := EraseReply{Node: n.cfg.Node, Session: string(id)}
	var s *session
	for {
		s = n.sessions.get(id, true)
		s.mu.Lock()
		if !s.gone {
			break
		}
		s.mu.Unlock()
	}
	defer s.mu.Unlock()
	rep.Live = s.run != nil
	ack, err := n.pub.Erase(ctx, id, n.epoch.Load())
	switch {
	case errors.Is(err, snapshot.ErrNotFound) && !rep.Live:
		n.sessions.remove(s)
		rep.Error = err.Error()
		return rep
	case err != nil && !errors.Is(err, snapshot.ErrNotFound):
		if !rep.Live {
			n.sessions.remove(s)
		}
		n.log.Error("cannot erase session", "session", id, "err", err)
		rep.Error = err.Error()
		return rep
	}
	n.sessions.end(s)
	rep.Tombstone = ack.StreamSeq
	n.schedulePurge(id, ack.StreamSeq, time.Now(), 0) // the tombstone may be one found there: read it again
	n.met.ended.WithLabelValues("erased").Inc()
	n.log.Info("session erased", "session", id, "live", rep.Live, "tombstone_seq", ack.StreamSeq)
	return rep
}
