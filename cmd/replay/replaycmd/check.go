package replaycmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
	"understudy/subscriber"
)

// checkJSON is check's -json output.
type checkJSON struct {
	Stream     string         `json:"stream"`
	Registry   []string       `json:"registry"`   // what this build can materialize
	Migrations []string       `json:"migrations"` // "name@from->to"
	Entities   string         `json:"entities"`   // how references were resolved
	Sessions   int            `json:"sessions"`
	AsIs       int            `json:"as_is"`
	Migrate    int            `json:"migrate"`
	Fail       int            `json:"fail"`
	TookMS     int64          `json:"took_ms"`
	Versions   []versionCheck `json:"versions"`
}

// versionCheck is what would become of the live sessions of one
// application version (the session's own application, "name@version";
// "-" for messages that are not readable snapshots).
type versionCheck struct {
	App      string         `json:"app"`
	Sessions int            `json:"sessions"`
	AsIs     int            `json:"as_is"`    // materialize as they are, and stay
	Migrate  int            `json:"migrate"`  // materialize, and move at their next interaction
	Fail     int            `json:"fail"`     // cannot be rebuilt by this build
	Finished int            `json:"finished"` // of AsIs: finished, shown as they are until they end
	To       map[string]int `json:"migrate_to,omitempty"`
	Failures []failureKind  `json:"failures,omitempty"`
	Failed   []string       `json:"failed_sessions,omitempty"`
}

// failureKind counts the sessions that fail one way, with the first one.
type failureKind struct {
	Kind         string `json:"kind"`
	Count        int    `json:"count"`
	FirstSession string `json:"first_session,omitempty"`
	FirstError   string `json:"first_error"`
}

// verdict is what would become of one session.
type verdict struct {
	session   model.SessionID
	streamSeq uint64
	app       string // its own application's key; "-" when unreadable
	outcome   string // "as_is", "migrate", "fail"
	finished  bool
	to        string // with migrate: the application version it moves to
	kind      string // with fail
	err       error
}

func runCheck(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("check", "", `Preflight of a build: reads every live session from NATS (read-only), rebuilds
each one with the applications and migrations compiled into this tool, and
reports per application version how many would run as they are, migrate at
their next interaction (to the newest version a chain of migrations reaches),
or fail, with the first error of each kind. Run it with the tool built from the
registry of the build you are about to deploy: the exit status is 1 if any
session would fail. Nothing is written to NATS or to a database. Entity
references are taken as they are (the check is of the build, not of the data),
unless -db or -mem resolves them. Progress goes to stderr.`, "nats", "group", "json")
	listFailed := f.Bool("failed", false, "also print the id of every session that would fail, one per line")
	workers := f.Int("workers", runtime.GOMAXPROCS(0), "sessions rebuilt in parallel")
	every := f.Duration("progress", 2*time.Second, "report progress on stderr this often (0: never)")
	db := f.String("db", "", "resolve entity references from this database (a SQLite file or a postgres:// DSN)")
	var mem *bool
	if e.cfg.Mem != nil {
		mem = f.Bool("mem", false, "resolve entity references with the built-in in-memory entities")
	}
	if _, err := f.parse(args, 0, 0); err != nil {
		return done(err)
	}
	if *workers < 1 {
		return fmt.Errorf("-workers %d: at least 1", *workers)
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
	claims, err := f.fence(cctx, c)
	if err != nil {
		return err
	}
	var res model.Resolver = asTheyAre{}
	where := "taken as they are"
	if *db != "" || (mem != nil && *mem) {
		r, w, closeRes, err := e.resolver(cctx, db, mem)
		if err != nil {
			return err
		}
		defer closeRes()
		res, where = r, w
	}
	subjects := uint64(0)
	if info, err := stream.Info(cctx); err == nil {
		subjects = info.State.NumSubjects
	}

	k := &checker{eng: model.NewEngine(e.cfg.Registry, res), sealer: c.sealer}
	start := time.Now()
	verdicts, err := k.run(ctx, subscriber.NewReader(stream, subscriber.Config{
		Subjects: c.subjects, Fence: claims, Sealer: c.sealer, Logger: slog.New(slog.DiscardHandler),
	}), *workers, newProgress(e.stderr, *every, subjects))
	if err != nil {
		return err
	}
	out := summarize(verdicts)
	out.Stream, out.Entities, out.TookMS = c.subjects.StreamName(), where, time.Since(start).Milliseconds()
	out.Registry = e.cfg.Registry.Keys()
	for _, m := range e.cfg.Registry.Migrations() {
		out.Migrations = append(out.Migrations, fmt.Sprintf("%s@%d->%d", m.App, m.From, m.To))
	}
	if *f.json {
		err = writeJSON(e.stdout, out)
	} else {
		err = writeCheck(e.stdout, c.url, out, *listFailed)
	}
	if err != nil {
		return err
	}
	if out.Fail > 0 {
		return fmt.Errorf("%d of %d live sessions would fail with this build: %w", out.Fail, out.Sessions, ErrWouldFail)
	}
	return nil
}

// checker rebuilds sessions with a build's registry.
type checker struct {
	eng    *model.Engine
	sealer snapshot.Sealer
}

// run checks every live session the reader gives, on workers goroutines,
// and returns a verdict per session. A session whose newest message the
// reader cannot use fails as a "bad message", under no application ("-").
func (k *checker) run(ctx context.Context, r *subscriber.Reader, workers int, p *progress) ([]verdict, error) {
	in := make(chan snapshot.Stored, 4*workers)
	out := make(chan verdict, 4*workers)
	var checked atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for st := range in {
				out <- k.check(ctx, st)
				checked.Add(1)
			}
		}()
	}
	ticker := make(chan struct{})
	var tw sync.WaitGroup
	tw.Add(1)
	go func() {
		defer tw.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ticker:
				return
			case <-t.C:
				p.report(int(checked.Load()))
			}
		}
	}()
	collected := make(chan map[model.SessionID]verdict, 1)
	go func() {
		// A session published while the reader runs may come twice, the
		// newer last: the newer verdict stands.
		m := map[model.SessionID]verdict{}
		for v := range out {
			if old, ok := m[v.session]; !ok || old.streamSeq < v.streamSeq {
				m[v.session] = v
			}
		}
		collected <- m
	}()
	err := r.ReadAll(ctx, func(st snapshot.Stored) error {
		select {
		case in <- st:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(in)
	wg.Wait()
	close(out)
	close(ticker)
	tw.Wait()
	m := <-collected
	p.done(int(checked.Load()))

	var list []verdict
	for _, v := range m {
		list = append(list, v)
	}
	var joined interface{ Unwrap() []error }
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("check: %w", err)
	case errors.As(err, &joined):
		// Sessions whose newest message is not a snapshot anyone can
		// read: no build rebuilds them.
		for _, e := range joined.Unwrap() {
			list = append(list, verdict{session: namedIn(e), app: "-", outcome: "fail", kind: "bad message", err: e})
		}
	default:
		return nil, fmt.Errorf("check: %w", err)
	}
	return list, nil
}

// namedIn returns the session an error of the reader is about: its text
// starts "session <id> " when the message's subject named a valid one.
func namedIn(err error) model.SessionID {
	rest, ok := strings.CutPrefix(err.Error(), "session ")
	if !ok {
		return ""
	}
	raw, _, _ := strings.Cut(rest, " ")
	id, err := model.ParseSessionID(raw)
	if err != nil {
		return ""
	}
	return id
}

// check says what would become of one session with the checker's build.
func (k *checker) check(ctx context.Context, st snapshot.Stored) verdict {
	v := verdict{session: st.Session, streamSeq: st.StreamSeq, app: "-", outcome: "fail"}
	s, err := snapshot.Session(k.sealer, st)
	var de *cbor.DecodeError
	switch {
	case errors.Is(err, snapshot.ErrSealed):
		v.kind, v.err = "sealed", err
		return v
	case errors.As(err, &de):
		v.kind, v.err = "undecodable", err
		return v
	case err != nil:
		v.kind, v.err = failure(err), err
		return v
	}
	v.app = s.App + "@" + strconv.Itoa(s.Version)
	run, err := k.eng.Materialize(ctx, s)
	if err != nil {
		v.kind, v.err = failure(err), err
		return v
	}
	if run.Finished() {
		// No interaction will come to migrate it: it is shown as it is
		// until it ends.
		v.outcome, v.finished = "as_is", true
		return v
	}
	next, ups, err := k.eng.Migrate(ctx, run, func(string, int) bool { return true })
	switch {
	case err != nil:
		v.kind, v.err = failure(err), err
	case len(ups) == 0:
		v.outcome = "as_is"
	default:
		v.outcome, v.to = "migrate", next.Session().App+"@"+strconv.Itoa(next.Session().Version)
	}
	return v
}

// failure names the kind of a rebuild's error.
func failure(err error) string {
	var de *cbor.DecodeError
	for _, k := range []struct {
		err  error
		kind string
	}{
		{model.ErrMigration, "migration"},
		{model.ErrUnknownApp, "unknown application"},
		{model.ErrUnknownVersion, "unknown version"},
		{model.ErrUnknownStep, "unknown step"},
		{model.ErrCorruptSession, "corrupt session"},
		{model.ErrLimit, "session limit"},
		{model.ErrBadSessionID, "bad session id"},
		{model.ErrUnresolved, "entity"},
		{model.ErrStaleEntity, "entity"},
		{snapshot.ErrBadMessage, "bad message"},
	} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	if errors.As(err, &de) {
		return "undecodable"
	}
	return "other"
}

// summarize counts verdicts per application version.
func summarize(verdicts []verdict) checkJSON {
	by := map[string]*versionCheck{}
	kinds := map[string]map[string]*failureKind{}
	// In session order, so that "the first" of each kind is the same
	// whatever order the stream gave.
	slices.SortFunc(verdicts, func(a, b verdict) int {
		return cmp.Or(strings.Compare(string(a.session), string(b.session)), cmp.Compare(a.streamSeq, b.streamSeq))
	})
	out := checkJSON{Versions: []versionCheck{}}
	for _, v := range verdicts {
		vc := by[v.app]
		if vc == nil {
			vc = &versionCheck{App: v.app}
			by[v.app], kinds[v.app] = vc, map[string]*failureKind{}
		}
		vc.Sessions++
		out.Sessions++
		switch v.outcome {
		case "as_is":
			vc.AsIs++
			out.AsIs++
			if v.finished {
				vc.Finished++
			}
		case "migrate":
			vc.Migrate++
			out.Migrate++
			if vc.To == nil {
				vc.To = map[string]int{}
			}
			vc.To[v.to]++
		default:
			vc.Fail++
			out.Fail++
			if v.session != "" {
				vc.Failed = append(vc.Failed, string(v.session))
			}
			fk := kinds[v.app][v.kind]
			if fk == nil {
				fk = &failureKind{Kind: v.kind, FirstSession: string(v.session), FirstError: v.err.Error()}
				kinds[v.app][v.kind] = fk
			}
			fk.Count++
		}
	}
	for _, app := range slices.SortedFunc(func(yield func(string) bool) {
		for a := range by {
			if !yield(a) {
				return
			}
		}
	}, compareAppKeys) {
		vc := by[app]
		for _, fk := range kinds[app] {
			vc.Failures = append(vc.Failures, *fk)
		}
		slices.SortFunc(vc.Failures, func(a, b failureKind) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Kind, b.Kind))
		})
		out.Versions = append(out.Versions, *vc)
	}
	return out
}

// compareAppKeys orders "name@version" by name, then version as a number.
func compareAppKeys(a, b string) int {
	an, av, _ := strings.Cut(a, "@")
	bn, bv, _ := strings.Cut(b, "@")
	x, _ := strconv.Atoi(av)
	y, _ := strconv.Atoi(bv)
	return cmp.Or(strings.Compare(an, bn), cmp.Compare(x, y))
}

// compactApps writes application versions briefly: "quote@1,2 card@1".
func compactApps(keys []string) string {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, compareAppKeys)
	var parts []string
	last := ""
	for _, k := range keys {
		name, version, _ := strings.Cut(k, "@")
		if name == last && len(parts) > 0 {
			parts[len(parts)-1] += "," + version
			continue
		}
		parts = append(parts, k)
		last = name
	}
	return strings.Join(parts, " ")
}

func writeCheck(w io.Writer, url string, out checkJSON, listFailed bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "stream %s at %s: %s live session(s), checked in %s\n", out.Stream, url, thousands(out.Sessions), ms(out.TookMS))
	fmt.Fprintf(&b, "this build materializes %s", dash(compactApps(out.Registry)))
	if len(out.Migrations) > 0 {
		fmt.Fprintf(&b, "; migrations %s", strings.Join(out.Migrations, ", "))
	}
	fmt.Fprintf(&b, "; entity references %s\n\n", out.Entities)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLICATION\tSESSIONS\tAS THEY ARE\tMIGRATE\tFAIL")
	for _, v := range out.Versions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.App, thousands(v.Sessions), thousands(v.AsIs), thousands(v.Migrate), thousands(v.Fail))
	}
	tw.Flush()
	for _, v := range out.Versions {
		for _, to := range slices.Sorted(func(yield func(string) bool) {
			for t := range v.To {
				if !yield(t) {
					return
				}
			}
		}) {
			fmt.Fprintf(&b, "  %s: %s would migrate to %s at their next interaction\n", v.App, thousands(v.To[to]), to)
		}
		if v.Finished > 0 {
			fmt.Fprintf(&b, "  %s: %s finished, shown as they are until they end\n", v.App, thousands(v.Finished))
		}
	}
	if out.Fail > 0 {
		fmt.Fprintf(&b, "\nwould fail:\n")
		for _, v := range out.Versions {
			for _, fk := range v.Failures {
				fmt.Fprintf(&b, "  %s: %s %s; the first: %s\n", v.App, thousands(fk.Count), fk.Kind, fk.FirstError)
			}
		}
	}
	fmt.Fprintf(&b, "\n%s as they are, %s migrate, %s fail\n", thousands(out.AsIs), thousands(out.Migrate), thousands(out.Fail))
	if listFailed && out.Fail > 0 {
		fmt.Fprintf(&b, "\nsessions that would fail:\n")
		for _, v := range out.Versions {
			for _, id := range v.Failed {
				fmt.Fprintln(&b, id)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// thousands writes n with thousands separators: 100,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// progress reports a long check on stderr: every so often a line with
// how many sessions were checked, of about how many.
type progress struct {
	w       io.Writer
	every   time.Duration // 0: never
	total   uint64        // the stream's subjects: about the sessions
	start   time.Time
	last    time.Time
	printed bool
}

func newProgress(w io.Writer, every time.Duration, total uint64) *progress {
	now := time.Now()
	return &progress{w: w, every: every, total: total, start: now, last: now}
}

// report says how far the check is, if a line is due.
func (p *progress) report(n int) {
	now := time.Now()
	if p.every <= 0 || now.Sub(p.last) < p.every {
		return
	}
	p.last, p.printed = now, true
	rate := float64(n) / now.Sub(p.start).Seconds()
	fmt.Fprintf(p.w, "check: %s of about %s sessions (%s/s)\n", thousands(n), thousands(int(p.total)), thousands(int(rate)))
}

// done ends the report, if there was one.
func (p *progress) done(n int) {
	if p.printed {
		fmt.Fprintf(p.w, "check: %s sessions in %s\n", thousands(n), time.Since(p.start).Round(time.Millisecond))
	}
}

// asTheyAre resolves every entity reference to an entity at the version
// the session refers to: a check of the build, not of the database.
type asTheyAre struct{}

func (asTheyAre) Resolve(_ context.Context, ref model.Ref) (model.Entity, error) {
	return &model.Record{Ref: ref}, nil
}

func (asTheyAre) Choices(context.Context, string) ([]model.Entity, error) { return nil, nil }
