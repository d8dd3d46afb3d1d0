package replaycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"understudy/entity"
	"understudy/model"
	"understudy/pages"
)

// previewJSON is preview's -json output: the page's JSON twin as a node
// would have served it, and what the preview had to do differently.
type previewJSON struct {
	Session  model.SessionID `json:"session"`
	Message  msgJSON         `json:"message"`
	Page     *model.Page     `json:"page"`
	Notes    []string        `json:"notes,omitempty"`
	HTMLFile string          `json:"html_file,omitempty"`
	Resolver string          `json:"entities"`
}

func runPreview(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("preview", "<session>", "Rebuilds a session as of one snapshot (by default the newest valid one) with the\napplications compiled into this tool and renders the page the user saw then, as\ntext, and as an HTML document with -html. Nothing is written to NATS or to the\ndatabase. An entity that changed since is shown as it is now, with a note.", "nats", "group", "json")
	seq := f.Int64("seq", -1, "the snapshot at this interaction sequence")
	streamSeq := f.Uint64("stream-seq", 0, "the message at this stream sequence")
	htmlFile := f.String("html", "", "also write the page as a standalone HTML document to this file (- for stdout, instead of the text)")
	noValues := f.Bool("no-values", false, "text: leave out everything collected so far")
	var db *string
	if e.cfg.Resolver == nil {
		db = f.String("db", e.cfg.DefaultDB, "entity database the nodes use: a SQLite file or a postgres:// DSN")
	}
	var mem *bool
	if e.cfg.Mem != nil {
		mem = f.Bool("mem", false, "use the built-in in-memory entities instead of a database")
	}
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

	res, where, closeRes, err := e.resolver(ctx, db, mem)
	if err != nil {
		return err
	}
	defer closeRes()

	v, err := f.openSession(ctx, id)
	if err != nil {
		return err
	}
	defer v.c.close()
	c, stream, claims, h := v.c, v.stream, v.claims, v.msgs
	m, err := c.pick(ctx, stream, id, h, selector{seq: *seq, streamSeq: *streamSeq})
	if err != nil {
		return err
	}
	if m.Err != nil {
		return fmt.Errorf("%w: %w (%s show %s -stream-seq %d shows what it holds)", ErrUndecodable, m.Err, e.cfg.Name, id, m.StreamSeq)
	}
	if m.Tombstone {
		return fmt.Errorf("session %s stream seq %d: a tombstone: the session ended; preview an earlier snapshot with -seq (%s history %s)", id, m.StreamSeq, e.cfg.Name, id)
	}
	s, err := decode(m)
	if err != nil {
		return err
	}
	eng, run, notes, err := e.materialize(ctx, s, res)
	if err != nil {
		return fmt.Errorf("session %s stream seq %d: rebuild with this tool's applications: %w", id, m.StreamSeq, err)
	}
	pg, err := eng.Page(ctx, run)
	if err != nil {
		return fmt.Errorf("session %s stream seq %d: page: %w", id, m.StreamSeq, err)
	}
	if m.Fenced {
		notes = append(notes, "this snapshot is fenced ("+note(m, claims)+"): the user was never shown what it holds by a valid primary")
	}
	opts := pages.Options{
		Label:   func(ref model.Ref) string { return eng.EntityLabel(ctx, run, ref) },
		Banner:  fmt.Sprintf("Preview of session %s at interaction %d (stream seq %d, stored %s by %s at epoch %d): read only", id, m.Seq, m.StreamSeq, when(m.Time), m.Node, m.Epoch),
		Values:  !*noValues,
		Answers: eng.Answers(ctx, run),
	}
	if opts.Answers == nil {
		opts.Answers = []model.Answered{} // nothing answered yet: still in words
	}

	if *htmlFile != "" {
		if err := writeHTML(*htmlFile, e.stdout, pg, opts); err != nil {
			return err
		}
		if *htmlFile == "-" {
			return nil
		}
	}
	if *f.json {
		return writeJSON(e.stdout, previewJSON{Session: id, Message: toJSON(m), Page: pg, Notes: notes, HTMLFile: *htmlFile, Resolver: where})
	}
	var b strings.Builder
	if err := pages.RenderText(&b, pg, opts); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if *htmlFile != "" {
		fmt.Fprintf(&b, "HTML written to %s\n", *htmlFile)
	}
	_, err = fmt.Fprint(e.stdout, b.String())
	return err
}

func writeHTML(name string, stdout io.Writer, pg *model.Page, opts pages.Options) error {
	if name == "-" {
		return pages.RenderPage(stdout, pg, opts)
	}
	var b strings.Builder
	if err := pages.RenderPage(&b, pg, opts); err != nil {
		return err
	}
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("-html: %w", err)
	}
	return nil
}

// resolver returns the entities a preview resolves references with, a
// description of where they come from, and a function that closes them.
func (e *env) resolver(ctx context.Context, db *string, mem *bool) (model.Resolver, string, func(), error) {
	switch {
	case mem != nil && *mem:
		return e.cfg.Mem, "built-in (in memory)", func() {}, nil
	case e.cfg.Resolver != nil:
		return e.cfg.Resolver, "the tool's resolver", func() {}, nil
	}
	dsn := *db
	if !strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "file:") {
		// Never create a database: a missing file is a mistake.
		if _, err := os.Stat(dsn); errors.Is(err, fs.ErrNotExist) {
			hint := ""
			if e.cfg.Mem != nil {
				hint = ", or -mem for the built-in entities"
			}
			return nil, "", nil, fmt.Errorf("-db %s: no such file (run from where the nodes run, or give -db%s)", dsn, hint)
		}
	}
	store, err := entity.Open(ctx, entity.Config{DSN: dsn})
	if err != nil {
		return nil, "", nil, err
	}
	return store, "database " + redactURL(dsn), func() { store.Close() }, nil
}
