package replaycmd

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/model"
	"understudy/snapshot"
)

// msgJSON is one message of a session in JSON output.
type msgJSON struct {
	StreamSeq uint64    `json:"stream_seq"`
	Seq       uint64    `json:"seq"`
	Epoch     uint64    `json:"epoch"`
	Node      string    `json:"node"`
	Format    uint64    `json:"format"`
	Prev      uint64    `json:"prev"`
	Time      time.Time `json:"time"`
	Size      int       `json:"size"`
	Tombstone bool      `json:"tombstone"`
	Fenced    bool      `json:"fenced"`
	State     string    `json:"state"`
	MsgID     string    `json:"msg_id"`
	Error     string    `json:"error,omitempty"`
	// Newest marks the snapshot show and preview pick by default.
	Newest bool `json:"newest_valid,omitempty"`
}

func toJSON(m message) msgJSON {
	j := msgJSON{StreamSeq: m.StreamSeq, Seq: m.Seq, Epoch: m.Epoch, Node: m.Node, Format: m.Format, Prev: m.Prev,
		Time: m.Time, Size: m.Size, Tombstone: m.Tombstone, Fenced: m.Fenced, State: m.state(), MsgID: m.Header.Get(nats.MsgIdHdr)}
	if m.Err != nil {
		j.Error = m.Err.Error()
	}
	return j
}

type historyJSON struct {
	Session   model.SessionID `json:"session"`
	Subject   string          `json:"subject"`
	Discarded bool            `json:"discarded"` // older messages are no longer in the stream
	Claims    snapshot.Claims `json:"claims"`
	Messages  []msgJSON       `json:"messages"`
}

func runHistory(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("history", "<session>", "Lists every kept snapshot of a session, oldest first (the stream keeps the last 16\nper session by default): stream seq, interaction seq, epoch, node, when it was\nstored, its size, and its state: valid, ended (a tombstone), fenced (written by a\nprimary that had lost the group, judged by the group entry's claims) or bad.\nThe snapshot show and preview pick by default is marked *.", "nats", "group", "json")
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
	v, err := f.openSession(ctx, id)
	if err != nil {
		return err
	}
	defer v.c.close()
	c, stream, claims, h := v.c, v.stream, v.claims, v.msgs
	def, _ := c.pick(ctx, stream, id, h, selector{seq: -1})
	newest := def.valid() && !def.Tombstone

	if *f.json {
		out := historyJSON{Session: id, Subject: h[0].Subject, Discarded: discarded(h), Claims: claims, Messages: []msgJSON{}}
		for _, m := range h {
			j := toJSON(m)
			j.Newest = newest && m.StreamSeq == def.StreamSeq
			out.Messages = append(out.Messages, j)
		}
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "session %s (subject %s): %s\n", id, h[0].Subject, kept(h))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tSTREAM SEQ\tSEQ\tEPOCH\tNODE\tSTORED\tSIZE\tSTATE\tNOTE")
	for _, m := range h {
		mark := ""
		if newest && m.StreamSeq == def.StreamSeq {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n", mark, m.StreamSeq, m.Seq, m.Epoch, dash(m.Node), when(m.Time), m.Size, m.state(), note(m, claims))
	}
	tw.Flush()
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}

// note explains a message's state.
func note(m message, claims snapshot.Claims) string {
	switch {
	case m.Err != nil:
		return short(m.Err.Error(), 100)
	case m.Fenced:
		for _, c := range claims {
			if c.Epoch > m.Epoch {
				return fmt.Sprintf("after epoch %d claimed the group at stream seq %d", c.Epoch, c.Fence)
			}
		}
		return "fenced"
	case m.Tombstone:
		return "the session ended"
	}
	return ""
}
