package replaycmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
	"understudy/subscriber"
)

// listRow is one session in list's output.
type listRow struct {
	Session   model.SessionID `json:"session"`
	Seq       uint64          `json:"seq"`
	Epoch     uint64          `json:"epoch"`
	Node      string          `json:"node"`
	Updated   time.Time       `json:"updated"` // the session's last interaction, as its snapshot says (kept by an import)
	Stored    time.Time       `json:"stored"`  // when this stream stored the snapshot
	Size      int             `json:"size"`
	StreamSeq uint64          `json:"stream_seq"`
	State     string          `json:"state"` // valid, ended, fenced (no valid snapshot), bad
	App       string          `json:"app,omitempty"`
	Version   int             `json:"version,omitempty"`
	Apps      []string        `json:"apps,omitempty"` // with -no-decode: the envelope's applications
	Step      string          `json:"step,omitempty"`
	Finished  bool            `json:"finished"`
	Error     string          `json:"error,omitempty"`
}

func runList(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("list", "", "Lists the sessions in the stream with their newest valid snapshot: interaction seq,\nepoch, node, when the session was last updated, its size, the application and the step the user\nis at. Ended sessions (tombstones), sessions with only fenced snapshots and\nmessages that are not snapshots are listed with -ended; a session whose newest\nmessage cannot be read is always listed, as bad.", "nats", "group", "json")
	noDecode := f.Bool("no-decode", false, "do not decode snapshots (faster): no application step, no -finished filter")
	ended := f.Bool("ended", false, "include ended sessions (tombstones) and sessions with only fenced snapshots")
	app := f.String("app", "", "only sessions of this application (name, or name@version)")
	node := f.String("node", "", "only snapshots written by this node")
	epoch := f.Uint64("epoch", 0, "only snapshots written at this epoch")
	since := f.String("since", "", "only sessions updated since this time (RFC 3339) or for this long (a duration: 15m)")
	finished := f.String("finished", "", "yes: only finished applications; no: only unfinished ones")
	sortBy := f.String("sort", "time", "order: time (newest first), size (largest first), seq (highest first) or id")
	reverse := f.Bool("reverse", false, "reverse the order")
	limit := f.Int("limit", 0, "print at most this many sessions (0: all)")
	if _, err := f.parse(args, 0, 0); err != nil {
		return done(err)
	}
	var after time.Time
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			after = time.Now().Add(-d)
		} else if after, err = time.Parse(time.RFC3339Nano, *since); err != nil {
			return fmt.Errorf("-since %q: neither a duration (15m) nor an RFC 3339 time", *since)
		}
	}
	switch *finished {
	case "", "yes", "no":
	default:
		return fmt.Errorf("-finished %q: yes or no", *finished)
	}
	if *finished != "" && *noDecode {
		return fmt.Errorf("-finished needs the snapshots decoded: not with -no-decode")
	}
	order, ok := map[string]func(a, b listRow) int{
		"time": func(a, b listRow) int { return b.Updated.Compare(a.Updated) },
		"size": func(a, b listRow) int { return cmp.Compare(b.Size, a.Size) },
		"seq":  func(a, b listRow) int { return cmp.Compare(b.Seq, a.Seq) },
		"id":   func(a, b listRow) int { return strings.Compare(string(a.Session), string(b.Session)) },
	}[*sortBy]
	if !ok {
		return fmt.Errorf("-sort %q: time, size, seq or id", *sortBy)
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
	claims, err := f.fence(ctx, c)
	if err != nil {
		return err
	}
	msgs, err := c.newest(ctx, stream, claims, *ended)
	if err != nil {
		return err
	}

	rows := make([]listRow, 0, len(msgs))
	for _, m := range msgs {
		// Until the snapshot says when the session was last updated, the
		// stream's time stands in for it (a tombstone has no payload).
		r := listRow{Session: m.Session, Seq: m.Seq, Epoch: m.Epoch, Node: m.Node, Updated: m.Time, Stored: m.Time, Size: m.Size,
			StreamSeq: m.StreamSeq, State: m.state()}
		if r.Session == "" {
			r.Session = model.SessionID(strings.TrimPrefix(m.Subject, c.subjects.Prefix()+".sess."))
		}
		switch {
		case m.Err != nil:
			r.Error = m.Err.Error()
		case m.Tombstone:
		case *noDecode:
			if data, err := payload(m); err == nil {
				if env, err := cbor.PeekEnvelope(data); err == nil {
					r.Apps = env.Apps
					if !env.Time.IsZero() {
						r.Updated = env.Time
					}
				}
			}
		default:
			s, err := decode(m)
			if err != nil {
				r.State, r.Error = "bad", err.Error()
				break
			}
			r.App, r.Version = s.App, s.Version
			if !s.Updated.IsZero() {
				r.Updated = s.Updated
			}
			loc, fin, err := waiting(s)
			r.Step, r.Finished = loc, fin
			if err != nil {
				r.Error = err.Error()
			}
		}
		if keep(r, *app, *node, *epoch, after, *finished) {
			rows = append(rows, r)
		}
	}
	slices.SortStableFunc(rows, func(a, b listRow) int {
		if *reverse {
			a, b = b, a
		}
		if c := order(a, b); c != 0 {
			return c
		}
		return strings.Compare(string(a.Session), string(b.Session))
	})
	if *limit > 0 && len(rows) > *limit {
		rows = rows[:*limit]
	}

	if *f.json {
		return writeJSON(e.stdout, rows)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSEQ\tEPOCH\tNODE\tUPDATED\tSIZE\tAPP\tSTEP")
	for _, r := range rows {
		app := r.App
		if r.App != "" {
			app = fmt.Sprintf("%s@%d", r.App, r.Version)
		} else if len(r.Apps) > 0 {
			app = strings.Join(r.Apps, ",")
		}
		step := r.Step
		switch {
		case r.State == "bad":
			step = "(bad: " + short(strings.TrimPrefix(r.Error, fmt.Sprintf("session %s stream seq %d: ", r.Session, r.StreamSeq)), 70) + ")"
		case r.State == "ended":
			step = "(ended)"
		case r.State == "fenced":
			step = "(fenced only)"
		case r.Finished:
			step = "(finished)"
		case r.Error != "":
			step = "(" + short(r.Error, 60) + ")"
		case *noDecode:
			step = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n", r.Session, r.Seq, r.Epoch, r.Node, when(r.Updated), r.Size, dash(app), step)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d session(s)\n", len(rows))
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}

func keep(r listRow, app, node string, epoch uint64, after time.Time, finished string) bool {
	if app != "" {
		match := r.App == app || fmt.Sprintf("%s@%d", r.App, r.Version) == app
		for _, a := range r.Apps {
			match = match || a == app || strings.HasPrefix(a, app+"@")
		}
		if !match {
			return false
		}
	}
	switch {
	case node != "" && r.Node != node:
		return false
	case epoch != 0 && r.Epoch != epoch:
		return false
	case !after.IsZero() && r.Updated.Before(after):
		return false
	case finished == "yes" && !r.Finished, finished == "no" && (r.Finished || r.State != "valid"):
		return false
	}
	return true
}

// newest returns each session's newest valid snapshot: the way a backup
// catches up (subscriber.Reader.ReadAll, an ordered consumer delivering
// the last message per subject, which also works around the server's
// skipped messages). With all, and for every session ReadAll could not
// read, the subject's newest message is read from the stream leader as
// well: tombstones, sessions with only fenced snapshots, and messages
// that are not snapshots.
func (c *conn) newest(ctx context.Context, stream jetstream.Stream, fence snapshot.Fence, all bool) ([]message, error) {
	if fence == nil {
		fence = snapshot.NoFence{}
	}
	r := subscriber.NewReader(stream, subscriber.Config{Subjects: c.subjects, Fence: fence, Logger: slog.New(slog.DiscardHandler)})
	var out []message
	seen := map[string]bool{}
	err := r.ReadAll(ctx, func(st snapshot.Stored) error {
		subject, err := c.subjects.SessionSubject(string(st.Session))
		if err != nil {
			return err
		}
		if seen[subject] {
			// Published again while reading: keep the newer.
			for i := range out {
				if out[i].Subject == subject && out[i].StreamSeq < st.StreamSeq {
					out[i] = message{Meta: st.Meta, Subject: subject, Data: st.Data}
				}
			}
			return nil
		}
		seen[subject] = true
		out = append(out, message{Meta: st.Meta, Subject: subject, Data: st.Data})
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	if err == nil && !all {
		return out, nil
	}
	// Some sessions were not read (their newest message is bad), or all
	// were asked for: visit the subjects ReadAll did not give.
	info, ierr := stream.Info(ctx, jetstream.WithSubjectFilter(c.subjects.SessionFilter()))
	if ierr != nil {
		return nil, errors.Join(err, fmt.Errorf("list subjects: %w", ierr))
	}
	var rest []string
	for subject := range info.State.Subjects {
		if !seen[subject] {
			rest = append(rest, subject)
		}
	}
	slices.Sort(rest)
	for _, subject := range rest {
		raw, err := stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("subject %s: %w", subject, err)
		}
		m := c.judgeRaw(fence, raw)
		if m.Fenced && m.Prev != 0 {
			// The newest valid snapshot below the fenced ones, if any.
			if st, err := snapshot.Latest(ctx, stream, c.subjects, c.sealer, m.Session, fence); err == nil {
				m = message{Meta: st.Meta, Subject: subject, Data: st.Data, sealer: c.sealer}
			}
		}
		if all || m.Err != nil || (m.valid() && !m.Tombstone) {
			out = append(out, m)
		}
	}
	return out, nil
}

func short(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
