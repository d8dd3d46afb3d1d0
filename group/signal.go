package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker"
)

// resendEvery is how often Signal sends the signal again while no reply
// has come. A failover that waits out a lease answers well within it; one
// behind a NATS leader election answers a repeated signal.
const resendEvery = 2 * time.Second

// Reasons for a failover signal.
const (
	// ReasonUnreachable: the primary refused or reset a connection; with a
	// single NATS server a backup may confirm the crash and skip the lease.
	ReasonUnreachable = "unreachable"
	// ReasonLease: the primary's renewals stopped or its health checks fail.
	ReasonLease = "lease"
	// ReasonOperator: a person asked for it.
	ReasonOperator = "operator"
)

// FailoverRequest is the failover signal.
type FailoverRequest struct {
	Group  string `json:"group"`
	Failed string `json:"failed"` // the node believed dead
	Reason string `json:"reason"`
}

// FailoverReply is a backup's answer: the group's owner once the failover is
// settled. Promoted is set only in the reply of the node that won.
type FailoverReply struct {
	Node     string        `json:"node"`
	Address  string        `json:"address"`
	Epoch    uint64        `json:"epoch"`
	Promoted bool          `json:"promoted,omitempty"`
	FastPath bool          `json:"fast_path,omitempty"`
	Sessions int           `json:"sessions,omitempty"`
	Took     time.Duration `json:"took,omitempty"`
	// Parts of Took, for the winner: lease wait (or the fast path's ping),
	// drain, claim.
	Wait  time.Duration `json:"wait,omitempty"`
	Drain time.Duration `json:"drain,omitempty"`
	Claim time.Duration `json:"claim,omitempty"`
	Error string        `json:"error,omitempty"`
}

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

// ping is what a node answers on its control subject.
type ping struct {
	Node  string `json:"node"`
	Role  string `json:"role"`
	Epoch uint64 `json:"epoch"`
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
}
