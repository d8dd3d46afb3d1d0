package replaycmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/group"
	"understudy/snapshot"
)

// statusJSON is status's -json output.
type statusJSON struct {
	Group    string          `json:"group"`
	Exists   bool            `json:"exists"`
	Epoch    uint64          `json:"epoch"`
	Owner    string          `json:"owner"`
	Address  string          `json:"address"`
	Fence    uint64          `json:"fence"`
	Claims   snapshot.Claims `json:"claims"`
	Released bool            `json:"released"`
	Revision uint64          `json:"revision"`
	Renewals uint64          `json:"renewals"`
	// LeaseAgeMS is the time since the last renewal seen while status
	// watched (at most -wait); RenewedAgeMS the time since the renewal
	// time the owner wrote, by its clock.
	LeaseAgeMS   int64        `json:"lease_age_ms"`
	Renewed      time.Time    `json:"renewed"`
	RenewedAgeMS int64        `json:"renewed_age_ms"`
	Members      []memberJSON `json:"members"`
	Stream       *streamJSON  `json:"stream,omitempty"`
	WatchedMS    int64        `json:"watched_ms"`
}

type memberJSON struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	Address  string `json:"address"`
	Epoch    uint64 `json:"epoch"`
	Lag      uint64 `json:"lag"`
	Sessions int    `json:"sessions"`
	CaughtUp bool   `json:"caught_up"`
	AgeMS    int64  `json:"heartbeat_age_ms"`
	Gone     bool   `json:"gone"`
	// Apps are the application versions the member announces it can
	// materialize; absent for a build that announces none.
	Apps []string `json:"apps,omitempty"`
}

type streamJSON struct {
	Name     string    `json:"name"`
	Messages uint64    `json:"messages"`
	Sessions uint64    `json:"sessions"`
	Bytes    uint64    `json:"bytes"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	LastTime time.Time `json:"last_time"`
	History  int64     `json:"history"`
	Replicas int       `json:"replicas"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	f := e.newFlags("status", "", "Shows the replication group: its owner, epoch, lease, fence sequence and claims,\nwhether it was released, and its members as their heartbeats describe them\n(role, lag, sessions held, caught up). It listens to heartbeats for -wait first.", "nats", "group", "json")
	wait := f.Duration("wait", 1200*time.Millisecond, "how long to listen for heartbeats (nodes send one every 500ms by default)")
	gone := f.Duration("gone", 1500*time.Millisecond, "a member whose last heartbeat is older than this is marked gone")
	if _, err := f.parse(args, 0, 0); err != nil {
		return done(err)
	}
	ctx, cancel := f.withTimeout(ctx)
	defer cancel()
	c, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()

	out := statusJSON{Group: *f.group, Members: []memberJSON{}}
	kv, err := c.js.KeyValue(ctx, c.subjects.GroupsBucket())
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv = nil
	case err != nil:
		return fmt.Errorf("bucket %s: %w", c.subjects.GroupsBucket(), err)
	}
	start := time.Now()
	var st group.Status
	var entry group.Entry
	if kv != nil {
		mon := group.NewMonitor(c.nc, kv, group.MonitorConfig{Subjects: c.subjects, Group: *f.group, Logger: e.log})
		if err := mon.Start(ctx); err != nil {
			return err
		}
		defer mon.Close()
		select {
		case <-time.After(*wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		st = mon.Status(*gone)
		entry, _ = mon.Owner()
	}
	out.WatchedMS = time.Since(start).Milliseconds()
	out.Exists, out.Epoch, out.Owner, out.Address, out.Fence = st.Exists, st.Epoch, st.Owner, st.Address, st.Fence
	out.Released, out.Renewals, out.LeaseAgeMS = st.Released, st.Renewals, st.LeaseAge.Milliseconds()
	out.Claims, out.Revision, out.Renewed = entry.Claims, entry.Revision, entry.Renewed
	if !entry.Renewed.IsZero() {
		out.RenewedAgeMS = time.Since(entry.Renewed).Milliseconds()
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, memberJSON{Node: m.Node, Role: m.Role, Address: m.Address, Epoch: m.Epoch, Lag: m.Lag,
			Sessions: m.Sessions, CaughtUp: m.CaughtUp, AgeMS: m.Age.Milliseconds(), Gone: m.Gone, Apps: m.Apps})
	}
	if s, err := c.js.Stream(ctx, c.subjects.StreamName()); err == nil {
		if info, err := s.Info(ctx); err == nil {
			out.Stream = &streamJSON{Name: info.Config.Name, Messages: info.State.Msgs, Sessions: info.State.NumSubjects,
				Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, LastTime: info.State.LastTime,
				History: info.Config.MaxMsgsPerSubject, Replicas: info.Config.Replicas}
		}
	}

	if *f.json {
		return writeJSON(e.stdout, out)
	}
	return writeStatus(e, c, kv != nil, out)
}

func writeStatus(e *env, c *conn, bucket bool, s statusJSON) error {
	var b strings.Builder
	fmt.Fprintf(&b, "group %s at %s\n", s.Group, c.url)
	switch {
	case !bucket:
		fmt.Fprintf(&b, "  no groups bucket %s: no node has run against this NATS (or -prefix is wrong)\n", c.subjects.GroupsBucket())
	case !s.Exists:
		fmt.Fprintf(&b, "  no entry: the group has never had a primary\n")
	default:
		owner := s.Owner
		if s.Address != "" {
			owner += " (" + s.Address + ")"
		}
		fmt.Fprintf(&b, "  owner     %s\n", owner)
		fmt.Fprintf(&b, "  epoch     %d (entry revision %d)\n", s.Epoch, s.Revision)
		lease := fmt.Sprintf("last renewal seen %s ago", ms(s.LeaseAgeMS))
		if s.LeaseAgeMS >= s.WatchedMS-50 {
			lease = fmt.Sprintf("no renewal seen in %s", ms(s.WatchedMS))
		}
		if !s.Renewed.IsZero() {
			lease += fmt.Sprintf("; owner's clock: renewed %s (%s ago), %d renewals this epoch", when(s.Renewed), ms(s.RenewedAgeMS), s.Renewals)
		}
		fmt.Fprintf(&b, "  lease     %s\n", lease)
		claims := make([]string, len(s.Claims))
		for i, cl := range s.Claims {
			claims[i] = fmt.Sprintf("epoch %d from stream seq %d", cl.Epoch, cl.Fence)
		}
		fmt.Fprintf(&b, "  fence     stream seq %d; claims: %s\n", s.Fence, strings.Join(claims, ", "))
		fmt.Fprintf(&b, "  released  %s\n", yesNo(s.Released))
	}
	if st := s.Stream; st != nil {
		fmt.Fprintf(&b, "stream %s: %d session(s), %d messages, %s, stream seqs %d-%d, last %s, history %d per session, %d replica(s)\n",
			st.Name, st.Sessions, st.Messages, bytesText(st.Bytes), st.FirstSeq, st.LastSeq, when(st.LastTime), st.History, st.Replicas)
	} else {
		fmt.Fprintf(&b, "stream %s: not found\n", c.subjects.StreamName())
	}
	if len(s.Members) == 0 {
		fmt.Fprintf(&b, "members: no heartbeat in %s\n", ms(s.WatchedMS))
		_, err := fmt.Fprint(e.stdout, b.String())
		return err
	}
	fmt.Fprintf(&b, "members (heartbeats over %s):\n", ms(s.WatchedMS))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tROLE\tEPOCH\tLAG\tSESSIONS\tCAUGHT UP\tHEARTBEAT\tADDRESS\tVERSIONS")
	for _, m := range s.Members {
		role := m.Role
		if m.Node == s.Owner && m.Role == "primary" {
			role += " (owner)"
		}
		hb := ms(m.AgeMS) + " ago"
		if m.Gone {
			hb += " (gone)"
		}
		versions := compactApps(m.Apps)
		if len(m.Apps) == 0 {
			versions = "(not announced)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", m.Node, role, m.Epoch, m.Lag, m.Sessions, yesNo(m.CaughtUp), hb, m.Address, versions)
	}
	tw.Flush()
	if live := liveApps(s.Members); live != nil {
		fmt.Fprintf(&b, "every live member materializes: %s\n", dash(compactApps(live)))
	}
	_, err := fmt.Fprint(e.stdout, b.String())
	return err
}

// liveApps returns the application versions every live member announces:
// what a primary may publish sessions on (nil with no live member).
func liveApps(members []memberJSON) []string {
	var out []string
	first := true
	for _, m := range members {
		if m.Gone {
			continue
		}
		if first {
			out, first = slices.Clone(m.Apps), false
			if out == nil {
				out = []string{}
			}
			continue
		}
		out = slices.DeleteFunc(out, func(k string) bool { return !slices.Contains(m.Apps, k) })
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ms(n int64) string { return (time.Duration(n) * time.Millisecond).String() }

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// when is how times are shown: UTC, to the millisecond.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
