package replaycmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"understudy/model"
	"understudy/snapshot"
)

// The export format: JSON lines, self-describing. The first line is an
// exportHeader; each further line an exportMsg, oldest first, exactly as
// the stream stored it (subject, headers, payload in base64), so that
// import can publish it again with its original headers.
const (
	exportFormat  = "understudy-replay-export"
	exportVersion = 1
)

type exportHeader struct {
	Format   string          `json:"format"`  // exportFormat
	Version  int             `json:"version"` // exportVersion
	Exported time.Time       `json:"exported"`
	Session  model.SessionID `json:"session"`
	Messages int             `json:"messages"`
	Source   exportSource    `json:"source"`
	// Claims are the source group's claims at export time: they judged
	// the fenced snapshots; their fence sequences are the source stream's.
	Claims snapshot.Claims `json:"claims,omitempty"`
}

type exportSource struct {
	URL     string `json:"url"` // without credentials
	Server  string `json:"server,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	Stream  string `json:"stream"`
	Prefix  string `json:"prefix"`
	Group   string `json:"group"`
	History int64  `json:"history,omitempty"`
	// Discarded: the session had older messages the stream no longer held.
	Discarded bool `json:"discarded"`
}

type exportMsg struct {
	Subject   string              `json:"subject"`
	StreamSeq uint64              `json:"stream_seq"` // in the source stream
	Time      time.Time           `json:"time"`
	Headers   map[string][]string `json:"headers"`
	Data      []byte              `json:"data"` // base64
}

func runExport(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("export", "<session> <file>", "Writes every kept message of a session (fenced ones, tombstones and bad ones\nincluded) to file (- for stdout) as JSON lines: a header line saying where it\ncame from, then each message with its subject, headers and payload in base64.\nAttach it to a bug report; import reproduces it in another NATS.", "nats", "group", "json")
	pos, err := f.parse(args, 2, 2)
	if err != nil {
		return done(err)
	}
	id, err := sessionArg(pos[0])
	if err != nil {
		return err
	}
	file := pos[1]
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	v, err := f.openSession(ctx, id)
	if err != nil {
		return err
	}
	defer v.c.close()
	c, stream, entryClaims, h := v.c, v.stream, v.claims, v.msgs
	hdr := exportHeader{Format: exportFormat, Version: exportVersion, Exported: time.Now().UTC(), Session: id, Messages: len(h),
		Source: exportSource{URL: c.url, Server: c.nc.ConnectedServerName(), Cluster: c.nc.ConnectedClusterName(),
			Stream: c.subjects.StreamName(), Prefix: c.subjects.Prefix(), Group: *f.group, Discarded: discarded(h)},
		Claims: entryClaims}
	if info := stream.CachedInfo(); info != nil {
		hdr.Source.History = info.Config.MaxMsgsPerSubject
	}

	var w io.Writer = e.stdout
	var outFile *os.File
	if file != "-" {
		if outFile, err = os.Create(file); err != nil {
			return err
		}
		defer outFile.Close()
		w = outFile
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(hdr); err != nil {
		return err
	}
	for _, m := range h {
		if err := enc.Encode(exportMsg{Subject: m.Subject, StreamSeq: m.StreamSeq, Time: m.Time, Headers: m.Header, Data: m.Data}); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if outFile != nil {
		if err := outFile.Close(); err != nil {
			return err
		}
		if *f.json {
			return writeJSON(e.stdout, hdr)
		}
		fmt.Fprintf(e.stdout, "exported %d messages of session %s (%s) to %s\n", len(h), id, kept(h), file)
	}
	return nil
}
