package replaycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/model"
	"understudy/node"
	"understudy/publisher"
	"understudy/snapshot"
)

// eraseAsk bounds the wait for the primary's answer to an erase request.
const eraseAsk = 10 * time.Second

// eraseJSON is erase's -json output.
type eraseJSON struct {
	Session   string `json:"session"`
	By        string `json:"by"`             // the primary that erased it, or "replay" when none answered
	Live      bool   `json:"live,omitempty"` // it was live in the primary's memory
	Tombstone uint64 `json:"tombstone,omitempty"`
	Left      int    `json:"left"` // messages of it left in the stream: its tombstone, until the retention purges it
}

func runErase(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("erase", "<session>", "Erases a session everywhere, for a person who asked to be forgotten: the primary drops\nit from memory (its user gets the \"session ended\" page), writes a tombstone that makes\nthe backups drop it, and purges its history from the stream. The tombstone, which\ncarries nothing but the session id, stays until the nodes' -retention passes. When no\nprimary answers, the tool writes the tombstone and purges itself. It needs the operator's\nNATS permissions; with sealed snapshots, give -key so that its tombstone is sealed too.", "nats", "group", "json")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return done(err)
	}
	id, err := sessionArg(pos[0])
	if err != nil {
		return err
	}
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	c, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	stream, err := c.stream(ctx)
	if err != nil {
		return err
	}

	out := eraseJSON{Session: string(id)}
	req, _ := json.Marshal(node.EraseRequest{Session: string(id)})
	actx, acancel := context.WithTimeout(ctx, eraseAsk)
	msg, err := c.nc.RequestWithContext(actx, c.subjects.EraseSubject(), req)
	acancel()
	switch {
	case err == nil:
		var rep node.EraseReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			return fmt.Errorf("session %s: the primary's answer: %w", id, err)
		}
		if rep.Error != "" {
			if strings.Contains(rep.Error, snapshot.ErrNotFound.Error()) {
				return fmt.Errorf("session %s: %w (primary %s)", id, ErrNoSession, rep.Node)
			}
			return fmt.Errorf("session %s: primary %s: %s", id, rep.Node, rep.Error)
		}
		out.By, out.Live, out.Tombstone = rep.Node, rep.Live, rep.Tombstone
	case errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		if perm := permissionError(c.nc); perm != nil {
			return fmt.Errorf("session %s: %w: erase needs the operator's permissions", id, perm)
		}
		e.log.Warn("no primary answered the erase request: erasing from the stream here", "session", id)
		if out.Tombstone, err = eraseHere(ctx, f, c, stream, id); err != nil {
			if perm := permissionError(c.nc); perm != nil {
				return fmt.Errorf("session %s: %w: erase needs the operator's permissions", id, perm)
			}
			return err
		}
		out.By = c.nc.Opts.Name
	default:
		return fmt.Errorf("session %s: erase request: %w", id, err)
	}

	left, err := c.history(ctx, stream, nil, id)
	if err != nil && !errors.Is(err, ErrNoSession) {
		return err
	}
	for _, m := range left {
		if !m.Tombstone {
			return fmt.Errorf("session %s: still holds a snapshot at stream seq %d after the erase", id, m.StreamSeq)
		}
	}
	out.Left = len(left)
	if *f.json {
		return writeJSON(e.stdout, out)
	}
	by := "primary " + out.By
	if out.By == c.nc.Opts.Name {
		by = "this tool (no primary answered)"
	}
	live := ""
	if out.Live {
		live = "; it was live on the primary, whose user now gets the \"session ended\" page"
	}
	_, err = fmt.Fprintf(e.stdout, "session %s erased by %s%s.\nThe stream holds %d message(s) of it: its tombstone (stream seq %d), which carries no data\nand is purged with the nodes' -retention.\n", id, by, live, out.Left, out.Tombstone)
	return err
}

// eraseHere writes the tombstone and purges, when no primary serves: at
// the group's epoch, so the fence rule does not set the tombstone aside.
func eraseHere(ctx context.Context, f *flags, c *conn, stream jetstream.Stream, id model.SessionID) (uint64, error) {
	if c.sealer == nil {
		subject, _ := c.subjects.SessionSubject(string(id))
		if raw, err := stream.GetLastMsgForSubject(ctx, subject); err == nil && raw.Header.Get(snapshot.HeaderKey) != "" {
			return 0, fmt.Errorf("session %s: its snapshots are sealed: give -key, so that the tombstone is sealed and the nodes accept it", id)
		}
	}
	var epoch uint64
	if e, err := c.groupEntry(ctx, *f.group); err != nil {
		return 0, err
	} else if e != nil {
		epoch = e.Epoch
	}
	p := publisher.New(c.js, stream, publisher.Config{Subjects: c.subjects, Node: "replay", Sealer: c.sealer, Logger: f.e.log})
	ack, err := p.Erase(ctx, id, epoch)
	if errors.Is(err, snapshot.ErrNotFound) {
		return 0, fmt.Errorf("session %s: %w (stream %s)", id, ErrNoSession, c.subjects.StreamName())
	}
	return ack.StreamSeq, err
}

// permissionError returns the connection's last error if the server
// refused a publish or subscription for lack of permission.
func permissionError(nc *nats.Conn) error {
	if err := nc.LastError(); err != nil && errors.Is(err, nats.ErrPermissionViolation) {
		return err
	}
	return nil
}
