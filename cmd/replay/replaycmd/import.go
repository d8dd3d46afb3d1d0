package replaycmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/model"
)

type importJSON struct {
	Session  model.SessionID `json:"session"`
	Subject  string          `json:"subject"`
	Stream   string          `json:"stream"`
	Messages int             `json:"messages"`
	FirstSeq uint64          `json:"first_seq"`
	LastSeq  uint64          `json:"last_seq"`
	Created  bool            `json:"stream_created"`
}

// maxExportLine bounds one line of an export: a message of the stream's
// largest size in base64, with room for its headers.
const maxExportLine = 16 << 20

func runImport(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("import", "<file>", "Publishes the messages of an export (file, or - for stdin) into the session stream\nof the NATS it connects to, in order, with their original headers (a\nNats-Msg-Id too, where earlier versions wrote one), creating the stream if it is missing. The session must not be in\nthat stream yet. Stream sequences differ from the source's: the\nUnderstudy-Prev headers keep the source's.", "nats", "json")
	replicas := f.Int("replicas", broker.DefaultReplicas, "replicas of the stream if import creates it (3 on a NATS cluster)")
	pos, err := f.parse(args, 1, 1)
	if err != nil {
		return done(err)
	}
	var r io.Reader = e.stdin
	if pos[0] != "-" {
		file, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer file.Close()
		r = file
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		return fmt.Errorf("%s: %w: empty", pos[0], ErrBadExport)
	}
	var hdr exportHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Format != exportFormat {
		return fmt.Errorf("%s: %w: the first line is not an export header", pos[0], ErrBadExport)
	}
	if hdr.Version != exportVersion {
		return fmt.Errorf("%s: %w: version %d, this tool reads %d", pos[0], ErrBadExport, hdr.Version, exportVersion)
	}
	source, err := broker.NewSubjects(hdr.Source.Prefix)
	if err != nil {
		return fmt.Errorf("%s: %w: source prefix: %w", pos[0], ErrBadExport, err)
	}
	var msgs []exportMsg
	for line := 2; sc.Scan(); line++ {
		var m exportMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("%s line %d: %w: %w", pos[0], line, ErrBadExport, err)
		}
		raw, err := source.SessionID(m.Subject)
		if err != nil {
			return fmt.Errorf("%s line %d: %w: %w", pos[0], line, ErrBadExport, err)
		}
		if id, err := model.ParseSessionID(raw); err != nil || id != hdr.Session {
			return fmt.Errorf("%s line %d: %w: subject %s is not session %s", pos[0], line, ErrBadExport, m.Subject, hdr.Session)
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if len(msgs) != hdr.Messages {
		return fmt.Errorf("%s: %w: %d messages, the header says %d (a cut file?)", pos[0], ErrBadExport, len(msgs), hdr.Messages)
	}

	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	c, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	out := importJSON{Session: hdr.Session, Stream: c.subjects.StreamName(), Messages: len(msgs)}
	if _, err := c.js.Stream(ctx, out.Stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := broker.EnsureStream(ctx, c.js, broker.StreamConfig{Subjects: c.subjects, Replicas: *replicas, Logger: e.log}); err != nil {
			return err
		}
		out.Created = true
	} else if err != nil {
		return fmt.Errorf("stream %s: %w", out.Stream, err)
	}
	if out.Subject, err = c.subjects.SessionSubject(string(hdr.Session)); err != nil {
		return err
	}
	var last uint64
	for _, m := range msgs {
		h := nats.Header{}
		for k, vs := range m.Headers {
			// The source's expectations were about the source stream.
			if strings.HasPrefix(strings.ToLower(k), "nats-expected-") {
				continue
			}
			h[k] = vs
		}
		msg := &nats.Msg{Subject: out.Subject, Header: h, Data: m.Data}
		ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last))
		var apiErr *jetstream.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence && last == 0:
			return fmt.Errorf("session %s is already in stream %s at %s: import only adds a session the stream does not hold", hdr.Session, out.Stream, c.url)
		case err != nil:
			return fmt.Errorf("session %s: publish source stream seq %d: %w", hdr.Session, m.StreamSeq, err)
		case ack.Duplicate:
			return fmt.Errorf("session %s is already in stream %s at %s: source stream seq %d is stored as stream seq %d (same Nats-Msg-Id, written by an earlier version)", hdr.Session, out.Stream, c.url, m.StreamSeq, ack.Sequence)
		}
		if out.FirstSeq == 0 {
			out.FirstSeq = ack.Sequence
		}
		out.LastSeq, last = ack.Sequence, ack.Sequence
	}
	if *f.json {
		return writeJSON(e.stdout, out)
	}
	created := ""
	if out.Created {
		created = " (stream created)"
	}
	_, err = fmt.Fprintf(e.stdout, "imported %d messages of session %s into %s%s at %s: stream seqs %d-%d\n",
		out.Messages, hdr.Session, out.Stream, created, c.url, out.FirstSeq, out.LastSeq)
	return err
}
