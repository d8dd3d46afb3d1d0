package replaycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/group"
	"understudy/model"
	"understudy/snapshot"
)

// tailJSON is one line of tail's -json output.
type tailJSON struct {
	Session model.SessionID `json:"session"`
	msgJSON
	App      string `json:"app,omitempty"`
	Step     string `json:"step,omitempty"`
	Finished bool   `json:"finished,omitempty"`
}

func runTail(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("tail", "[session]", "Follows the session stream like tail -f: a line per snapshot as it is stored (time,\nsession, interaction seq, epoch, node, the step the user is at, size), of one\nsession or of all. Tombstones, fenced snapshots (judged by the group's claims as\nthey stand when the snapshot arrives) and bad messages are marked. It runs until\ninterrupted, or until -count snapshots.", "nats", "group", "json")
	history := f.Bool("history", false, "first print the messages already in the stream (all of them: with no session, the whole stream)")
	count := f.Int("count", 0, "stop after this many messages (0: never)")
	noDecode := f.Bool("no-decode", false, "do not decode snapshots: no step")
	pos, err := f.parse(args, 0, 1)
	if err != nil {
		return done(err)
	}
	var id model.SessionID
	if len(pos) == 1 {
		if id, err = sessionArg(pos[0]); err != nil {
			return err
		}
	}
	cctx, cancel := f.withTimeout(ctx)
	defer cancel()
	c, err := f.connect(cctx)
	if err != nil {
		return err
	}
	defer c.close()
	stream, err := c.stream(cctx)
	if err != nil {
		return err
	}
	filter := c.subjects.SessionFilter()
	if id != "" {
		if filter, err = c.subjects.SessionSubject(string(id)); err != nil {
			return err
		}
	}
	// The claims are followed as they change, so that a snapshot of an old
	// primary is marked fenced once a newer epoch has claimed the group.
	var claims func() snapshot.Claims
	if kv, err := c.js.KeyValue(cctx, c.subjects.GroupsBucket()); err == nil {
		mon := group.NewMonitor(c.nc, kv, group.MonitorConfig{Subjects: c.subjects, Group: *f.group, Logger: e.log})
		if err := mon.Start(cctx); err != nil {
			return err
		}
		defer mon.Close()
		claims = func() snapshot.Claims { en, _ := mon.Owner(); return en.Claims }
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("bucket %s: %w", c.subjects.GroupsBucket(), err)
	} else {
		claims = func() snapshot.Claims { return nil }
	}
	policy := jetstream.DeliverNewPolicy
	if *history {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := stream.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: policy, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("follow %s: %w", filter, err)
	}
	iter, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", filter, err)
	}
	defer iter.Stop()
	// The consumer is created: stop iterating when the command's context
	// ends (Next does not watch it).
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			iter.Stop()
		case <-stopped:
		}
	}()
	if !*f.json {
		what := "all sessions"
		if id != "" {
			what = "session " + string(id)
		}
		fmt.Fprintf(e.stderr, "following %s on %s at %s (Ctrl-C stops)\n", what, c.subjects.StreamName(), c.url)
	}
	for n := 0; *count == 0 || n < *count; n++ {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("follow %s: %w", filter, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow %s: %w", filter, err)
		}
		m := judge(c.subjects, c.sealer, claims(), msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
		if err := e.tailLine(c, m, *noDecode, *f.json); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) tailLine(c *conn, m message, noDecode, asJSON bool) error {
	t := tailJSON{Session: m.Session, msgJSON: toJSON(m)}
	if t.Session == "" {
		t.Session = model.SessionID(strings.TrimPrefix(m.Subject, c.subjects.Prefix()+".sess."))
	}
	if m.Err == nil && !m.Tombstone && !noDecode {
		if s, err := decode(m); err != nil {
			t.State, t.Error = "bad", err.Error()
		} else {
			t.App = fmt.Sprintf("%s@%d", s.App, s.Version)
			loc, fin, err := waiting(s)
			t.Step, t.Finished = loc, fin
			if fin {
				t.Step = "(finished)"
			} else if err != nil {
				t.Step = "(" + err.Error() + ")"
			}
		}
	}
	if asJSON {
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	step := t.Step
	switch t.State {
	case "ended":
		step = "TOMBSTONE (session ended)"
	case "bad":
		step = "BAD: " + short(t.Error, 80)
	case "fenced":
		step = "FENCED " + step
	}
	_, err := fmt.Fprintf(e.stdout, "%s  %s  seq %-3d epoch %-2d %-12s %-24s %6d B  stream seq %d\n",
		when(m.Time), t.Session, m.Seq, m.Epoch, dash(m.Node), dash(step), m.Size, m.StreamSeq)
	return err
}
