package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker"
	"understudy/group/protocol"
)

// resendEvery is how often Signal sends the signal again while no reply
// has come. A failover that waits out a lease answers well within it; one
// behind a NATS leader election answers a repeated signal.
const resendEvery = 2 * time.Second

// Reasons for a failover signal.
const (
	ReasonUnreachable = protocol.ReasonUnreachable
	ReasonLease       = protocol.ReasonLease
	ReasonOperator    = protocol.ReasonOperator
)

type (
	// FailoverRequest is the failover signal.
	FailoverRequest = protocol.FailoverRequest
	// FailoverReply is a backup's answer: the group's owner once the
	// failover is settled.
	FailoverReply = protocol.FailoverReply
)

// Signal sends the failover signal and returns the first backup's reply:
// the owner of the group once the failover has settled. It is what a
// gateway or an operator command calls.
func Signal(ctx context.Context, nc *nats.Conn, subjects broker.Subjects, req FailoverRequest) (FailoverReply, error) {
	if req.Group == "" {
		req.Group = DefaultGroup
	}
	data, _ := json.Marshal(req)
	// The signal is sent again every resendEvery until a reply comes: a
	// request sent while this process or a backup was reconnecting (a NATS
	// server lost) is lost with the connection, and waiting out the whole
	// ctx for its reply would stall every request behind the failover. A
	// backup answers a repeated signal like any late one.
	var msg *nats.Msg
	var err error
	noResponders := 0
	for {
		actx, cancel := context.WithTimeout(ctx, resendEvery)
		msg, err = nc.RequestWithContext(actx, subjects.FailoverSubject(), data)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, nats.ErrNoResponders) {
			// Nobody listens: no backup, unless they are reconnecting.
			if noResponders++; noResponders > 3 {
				return FailoverReply{}, fmt.Errorf("failover of %s in group %s: %w", req.Failed, req.Group, ErrNoBackup)
			}
			if sleep(ctx, 100*time.Millisecond) != nil {
				return FailoverReply{}, fmt.Errorf("failover of %s in group %s: %w", req.Failed, req.Group, ctx.Err())
			}
			continue
		}
		if ctx.Err() != nil {
			return FailoverReply{}, fmt.Errorf("failover of %s in group %s: %w", req.Failed, req.Group, ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			if sleep(ctx, 100*time.Millisecond) != nil {
				return FailoverReply{}, fmt.Errorf("failover of %s in group %s: %w", req.Failed, req.Group, err)
			}
		}
	}
	var rep FailoverReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return FailoverReply{}, fmt.Errorf("failover of %s: reply: %w", req.Failed, err)
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("failover of %s: %s", req.Failed, rep.Error)
	}
	return rep, nil
}

// onSignal hands a failover signal to the core; the reply goes out when
// the core has one (reply).
func (m *Member) onSignal(msg *nats.Msg) {
	var req FailoverRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		m.log.Warn("unreadable failover signal", "err", err)
		return
	}
	if req.Group == "" {
		req.Group = DefaultGroup
	}
	if req.Group != m.cfg.Group {
		return
	}
	fast := m.fastPathAllowed()
	m.mu.Lock()
	m.nextID++
	id := protocol.SignalID(m.nextID)
	m.signals[id] = msg
	m.mu.Unlock()
	m.log.Info("failover signal", "failed", req.Failed, "reason", req.Reason, "fast_path_allowed", fast)
	m.do(func(now protocol.Mono) []protocol.Action { return m.core.Signal(now, id, req, fast) })
}

// reply sends the core's answer to a signal.
func (m *Member) reply(r protocol.Reply) {
	m.mu.Lock()
	msg := m.signals[r.Signal]
	delete(m.signals, r.Signal)
	m.mu.Unlock()
	if msg == nil || r.None {
		return
	}
	rep := r.Reply
	switch {
	case rep.Promoted:
		m.log.Info("promoted", "epoch", rep.Epoch, "fast_path", rep.FastPath, "sessions", rep.Sessions,
			"took", rep.Took, "wait", rep.Wait, "drain", rep.Drain, "claim", rep.Claim)
	case rep.Error != "":
		m.log.Warn("failover attempt failed", "err", rep.Error)
	}
	data, _ := json.Marshal(rep)
	if err := msg.Respond(data); err != nil {
		m.log.Debug("failover reply", "err", err)
	}
}

// ping is what a node answers on its control subject.
type ping struct {
	Node  string `json:"node"`
	Role  string `json:"role"`
	Epoch uint64 `json:"epoch"`
}

// onPing answers on the node's control subject: it proves this node's
// connection is alive, which the fast path relies on.
func (m *Member) onPing(msg *nats.Msg) {
	m.mu.Lock()
	p := ping{Node: m.cfg.Node, Role: m.core.Role().String(), Epoch: m.core.Epoch()}
	m.mu.Unlock()
	data, _ := json.Marshal(p)
	msg.Respond(data)
}

// Heartbeat is what a node publishes on <prefix>.hb.<node>.
type Heartbeat struct {
	Node     string    `json:"node"`
	Group    string    `json:"group"`
	Role     string    `json:"role"`
	Address  string    `json:"address"`
	Epoch    uint64    `json:"epoch"`
	Lag      uint64    `json:"lag"`
	Sessions int       `json:"sessions"`
	CaughtUp bool      `json:"caught_up"`
	Time     time.Time `json:"time"`
	// Apps are the application versions the node can materialize,
	// "name@version", sorted (Config.Apps): the primary moves sessions
	// only to versions every live member announces. Absent from the
	// heartbeats of builds that announce none.
	Apps []string `json:"apps,omitempty"`
}

// heartbeatLoop publishes the node's heartbeat.
func (m *Member) heartbeatLoop() {
	defer m.wg.Done()
	subj, err := m.cfg.Subjects.HeartbeatSubject(m.cfg.Node)
	if err != nil {
		return
	}
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	for {
		cur, _ := m.Entry()
		hb := Heartbeat{Node: m.cfg.Node, Group: m.cfg.Group, Role: m.Role().String(), Address: m.cfg.Address, Epoch: cur.Epoch, Time: time.Now().UTC(), Apps: m.cfg.Apps}
		if m.hooks.Progress != nil {
			hb.Lag, hb.Sessions, hb.CaughtUp = m.hooks.Progress()
		}
		data, _ := json.Marshal(hb)
		m.nc.Publish(subj, data)
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
