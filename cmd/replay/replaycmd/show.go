package replaycmd

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	fxcbor "github.com/fxamacker/cbor/v2"

	"understudy/cbor"
	"understudy/model"
)

// showJSON is show's -json output.
type showJSON struct {
	Session  model.SessionID     `json:"session"`
	Subject  string              `json:"subject"`
	Message  msgJSON             `json:"message"`
	Headers  map[string][]string `json:"headers"`
	Envelope *envelopeJSON       `json:"envelope,omitempty"`
	State    *sessionJSON        `json:"state,omitempty"`
	Diag     string              `json:"diag,omitempty"`
	Error    string              `json:"error,omitempty"`
}

type envelopeJSON struct {
	Format  uint64    `json:"format"`
	Session string    `json:"session"`
	Epoch   uint64    `json:"epoch"`
	Seq     uint64    `json:"seq"`
	Node    string    `json:"node"`
	Time    time.Time `json:"time"`
	Apps    []string  `json:"apps"`
}

type sessionJSON struct {
	App      string       `json:"app"`
	Version  int          `json:"version"`
	Created  time.Time    `json:"created"`
	Updated  time.Time    `json:"updated"`
	Finished bool         `json:"finished"`
	Waiting  string       `json:"waiting,omitempty"`
	NextID   model.StepID `json:"next_id"`
	// Values is everything collected (model.Run.Values); absent when the
	// session does not materialize with the tool's registry.
	Values *model.Value `json:"values,omitempty"`
	Steps  []stepInfo   `json:"steps"`
	Notes  []string     `json:"notes,omitempty"`
}

func runShow(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("show", "<session>", "Shows one snapshot of a session (by default the newest valid one): its headers,\nits envelope, everything collected so far and the step tree, or with -diag the\nCBOR in diagnostic notation. A message that cannot be decoded is shown with its\nheaders and raw diagnostic notation, and the command fails.", "nats", "group", "json")
	seq := f.Int64("seq", -1, "the snapshot at this interaction sequence")
	streamSeq := f.Uint64("stream-seq", 0, "the message at this stream sequence")
	diag := f.Bool("diag", false, "print the snapshot in CBOR diagnostic notation (RFC 8949 §8)")
	compact := f.Bool("compact", false, "with -diag: diagnostic notation on one line")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return done(err)
	}
	id, err := sessionArg(pos[0])
	if err != nil {
		return err
	}
	if *seq >= 0 && *streamSeq > 0 {
		return fmt.Errorf("-seq and -stream-seq: one or the other")
	}
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	v, err := f.openSession(ctx, id)
	if err != nil {
		return err
	}
	defer v.c.close()
	c, stream, claims, h := v.c, v.stream, v.claims, v.msgs
	sel := selector{seq: *seq, streamSeq: *streamSeq}
	m, err := c.pick(ctx, stream, id, h, sel)
	if err != nil {
		return err
	}
	out := showJSON{Session: id, Subject: m.Subject, Message: toJSON(m), Headers: m.Header}
	var notes []string
	if sel.seq < 0 && sel.streamSeq == 0 {
		for _, n := range h {
			if n.StreamSeq > m.StreamSeq {
				notes = append(notes, fmt.Sprintf("a newer message at stream seq %d is %s: -stream-seq %d shows it", n.StreamSeq, n.state(), n.StreamSeq))
			}
		}
	}
	if m.Fenced {
		notes = append(notes, "this snapshot is fenced: "+note(m, claims)+"; no reader uses it")
	}

	var fail error
	data, perr := payload(m)
	if perr != nil {
		fail = perr
	}
	if m.Err != nil {
		fail = fmt.Errorf("%w: %w", ErrUndecodable, m.Err)
	}
	if fail == nil && !m.Tombstone {
		if env, err := cbor.PeekEnvelope(data); err == nil {
			out.Envelope = &envelopeJSON{Format: env.Format, Session: string(env.Session), Epoch: env.Epoch, Seq: env.Seq, Node: env.Node, Time: env.Time, Apps: env.Apps}
		}
		if !*diag {
			s, err := decode(m)
			if err != nil {
				fail = err
			} else {
				out.State = e.describe(ctx, s)
				out.State.Notes = append(notes, out.State.Notes...)
				notes = nil
			}
		}
	}
	if (*diag || fail != nil) && len(data) > 0 {
		out.Diag, _ = diagnose(data, !*compact)
	}
	if fail != nil {
		out.Error = fail.Error()
	}

	if *f.json {
		if out.State == nil && len(notes) > 0 {
			out.State = &sessionJSON{Notes: notes}
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
		return fail
	}
	var b strings.Builder
	writeMessage(&b, m, out.Envelope)
	for _, n := range notes {
		fmt.Fprintf(&b, "note      %s\n", n)
	}
	if m.Tombstone {
		fmt.Fprintf(&b, "\nA tombstone: the session ended here. Earlier snapshots: %s history %s\n", e.cfg.Name, id)
	}
	if out.State != nil {
		writeState(&b, out.State)
	}
	if fail != nil {
		fmt.Fprintf(&b, "\nerror: %v\n", fail)
	}
	if out.Diag != "" {
		if fail != nil {
			b.WriteString("\ndiagnostic notation of the payload as it is:\n")
		} else {
			b.WriteString("\n")
		}
		b.WriteString(out.Diag)
		b.WriteString("\n")
	}
	if _, err := fmt.Fprint(e.stdout, b.String()); err != nil {
		return err
	}
	return fail
}

// writeMessage writes a message's place in the stream and its headers.
func writeMessage(b *strings.Builder, m message, env *envelopeJSON) {
	fmt.Fprintf(b, "session   %s\n", dash(string(m.Session)))
	fmt.Fprintf(b, "subject   %s\n", m.Subject)
	sealed := ""
	if m.Key != "" {
		sealed = ", sealed with key " + m.Key
	}
	fmt.Fprintf(b, "message   stream seq %d, stored %s, %d bytes%s, %s\n", m.StreamSeq, when(m.Time), m.Size, sealed, m.state())
	fmt.Fprintf(b, "headers\n")
	names := make([]string, 0, len(m.Header))
	width := 0
	for k := range m.Header {
		names = append(names, k)
		width = max(width, len(k)+1)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range m.Header[k] {
			fmt.Fprintf(b, "  %-*s %s\n", width, k+":", v)
		}
	}
	if env != nil {
		fmt.Fprintf(b, "envelope  format %d, seq %d, epoch %d, node %s, updated %s, apps %s\n",
			env.Format, env.Seq, env.Epoch, env.Node, when(env.Time), strings.Join(env.Apps, ", "))
	}
}

// describe is a decoded session for show: values when it materializes,
// and the step tree from its pools in any case.
func (e *env) describe(ctx context.Context, s *model.Session) *sessionJSON {
	out := &sessionJSON{App: s.App, Version: s.Version, Created: s.Created, Updated: s.Updated, Finished: s.Finished(),
		NextID: s.NextID, Steps: steps(s)}
	loc, _, err := waiting(s)
	out.Waiting = loc
	if err != nil {
		out.Notes = append(out.Notes, "no waiting page: "+err.Error())
	}
	_, run, notes, err := e.materialize(ctx, s, nil)
	if err != nil {
		out.Notes = append(out.Notes, fmt.Sprintf("does not materialize with this tool's registry (%v): values are shown from the raw step states", err))
	} else {
		v := run.Values()
		out.Values = &v
	}
	out.Notes = append(out.Notes, notes...)
	return out
}

func writeState(b *strings.Builder, s *sessionJSON) {
	if s.App != "" {
		fmt.Fprintf(b, "app       %s@%d, created %s, updated %s, %d steps (next id %d)\n", s.App, s.Version, when(s.Created), when(s.Updated), len(s.Steps), s.NextID)
		switch {
		case s.Finished:
			fmt.Fprintf(b, "waiting   nothing: the application finished\n")
		case s.Waiting != "":
			fmt.Fprintf(b, "waiting   at %s\n", s.Waiting)
		}
	}
	for _, n := range s.Notes {
		fmt.Fprintf(b, "note      %s\n", n)
	}
	if s.Values != nil {
		b.WriteString("\nvalues\n")
		for _, e := range s.Values.Entries() {
			writeValue(b, "  ", e.Name, e.Value)
		}
	}
	if len(s.Steps) > 0 {
		b.WriteString("\nsteps\n")
		for _, st := range s.Steps {
			path := st.Path
			if path == "" {
				path = "(root)"
			}
			state := "running"
			switch {
			case st.Waiting:
				state = "WAITING"
			case st.Done:
				state = "done"
			}
			extra := ""
			if st.Calls != "" {
				extra = " calls " + st.Calls
			}
			if len(st.params) > 0 {
				extra += "  " + paramsText(st.params)
			}
			fmt.Fprintf(b, "  %s#%d %s %s %s%s\n", strings.Repeat("  ", st.Depth), st.ID, st.Kind, path, state, extra)
		}
	}
}

// diagnose returns the CBOR diagnostic notation of data, indented unless
// flat; for bytes that are not CBOR, what could be read and a hex dump.
func diagnose(data []byte, pretty bool) (string, error) {
	d, err := fxcbor.Diagnose(data)
	if err == nil {
		if pretty {
			return indentEDN(d), nil
		}
		return d, nil
	}
	var b strings.Builder
	if d != "" {
		fmt.Fprintf(&b, "%s\n", d)
	}
	fmt.Fprintf(&b, "(not CBOR: %v)\nhex:\n", err)
	const limit = 4096
	if len(data) > limit {
		b.WriteString(hex.Dump(data[:limit]))
		fmt.Fprintf(&b, "... %d more bytes\n", len(data)-limit)
	} else {
		b.WriteString(hex.Dump(data))
	}
	return strings.TrimRight(b.String(), "\n"), err
}
