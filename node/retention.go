package node

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/model"
	"understudy/snapshot"
)

// purgeRetry is how long a purge that failed waits before the next try.
const purgeRetry = time.Minute

// purgeForget is how long past its due time a backup keeps a purge the
// primary should have done: it matters only if this node is promoted
// before a primary got to it, and a new primary runs what is due at once.
const purgeForget = 10 * time.Minute

// purge is an ended session whose history is to be purged from the
// stream once its retention has passed: every message at or below its
// tombstone.
type purge struct {
	id   model.SessionID
	upTo uint64 // the tombstone's stream sequence
	due  time.Time
	// epoch is the tombstone's, judged again by the fence rule before the
	// purge (a claim heard of since may fence it: a zombie's tombstone
	// ended nothing). 0: unknown (found by a scan of headers alone), the
	// tombstone is read again and checked whole.
	epoch uint64
}

// purges is the schedule of purges, soonest first. The primary adds the
// sessions it ends; a backup adds the tombstones its copy takes from the
// stream (subscriber.Config.OnEnded), so that once promoted it finishes
// what the old primary scheduled without reading the stream again. (A
// promotion used to scan the stream for tombstones after adopting every
// session: with failovers every few seconds the scan never ran, nothing
// was purged, and every catch-up read the tombstone of every session that
// ever ended.) A cold node has no copy: it scans at promotion. The
// schedule costs about 100 bytes a session ended within the retention, on
// every node alike.
type purges struct {
	mu sync.Mutex
	q  purgeHeap
}

type purgeHeap []purge

func (h purgeHeap) Len() int           { return len(h) }
func (h purgeHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h purgeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *purgeHeap) Push(x any)        { *h = append(*h, x.(purge)) }
func (h *purgeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

func (p *purges) add(x purge) {
	p.mu.Lock()
	heap.Push(&p.q, x)
	p.mu.Unlock()
}

// next removes and returns the soonest purge if it is due at now.
func (p *purges) next(now time.Time) (purge, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.q) == 0 || p.q[0].due.After(now) {
		return purge{}, false
	}
	return heap.Pop(&p.q).(purge), true
}

// forget drops the purges due before cutoff, and returns how many.
func (p *purges) forget(cutoff time.Time) int {
	n := 0
	for _, ok := p.next(cutoff); ok; _, ok = p.next(cutoff) {
		n++
	}
	return n
}

func (p *purges) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.q)
}

// schedulePurge schedules the purge of an ended session's history, its
// tombstone at stream sequence tomb written when.
func (n *Node) schedulePurge(id model.SessionID, tomb uint64, when time.Time, epoch uint64) {
	if n.cfg.Retention < 0 || tomb == 0 {
		return
	}
	n.purges.add(purge{id: id, upTo: tomb, due: when.Add(n.cfg.Retention), epoch: epoch})
}

// runPurges purges what is due, one session at a time, for at most
// budget: a purge removes each message of a session's history with a
// write of its own (about 2 ms for a history spread over a large stream,
// see publisher's BenchmarkPurge), and the server's API and the stream
// are shared with the publishes and with every other node. Eight purges
// at once, in a chaos run, took 250 ms each and starved a restarting
// node's requests for the stream's info for 25 s. What is left waits for
// the next sweep. Called by the sweep while serving.
func (n *Node) runPurges(ctx context.Context, now time.Time, budget time.Duration) {
	until := time.Now().Add(budget)
	for ctx.Err() == nil && !n.sweepStopped() && time.Now().Before(until) {
		p, ok := n.purges.next(now)
		if !ok {
			return
		}
		if !n.purgeable(ctx, p) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.pub.Purge(pctx, p.id, p.upTo)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("cannot purge an ended session: retrying later", "session", p.id, "err", err)
			p.due = now.Add(purgeRetry)
			n.purges.add(p)
			continue
		}
		n.met.purged.Inc()
		n.log.Info("ended session purged", "session", p.id, "up_to_stream_seq", p.upTo)
	}
}

// purgeable reports whether p's tombstone still ends its session: it is
// a valid tombstone of p's session, and no claim heard of since fences it
// (a zombie's tombstone, written after a claim it had not heard of, ended
// nothing: the session lives on below it). A tombstone of known epoch
// (written here, or taken into the copy, both valid then) is judged by
// the fence in memory; one found by a scan of headers is read first.
func (n *Node) purgeable(ctx context.Context, p purge) bool {
	epoch := p.epoch
	if epoch == 0 {
		var ok bool
		if epoch, ok = n.tombstoneEpoch(ctx, p); !ok {
			return false
		}
	}
	if n.member.Fence().Fenced(epoch, p.upTo) {
		n.log.Warn("not purging a session: its tombstone is fenced", "session", p.id, "stream_seq", p.upTo, "epoch", epoch)
		return false
	}
	return true
}

// tombstoneEpoch reads a tombstone found by scanTombstones and returns its
// epoch, if it is a valid tombstone of p's session (a message that only
// claims to be one, in its headers, purges nothing).
func (n *Node) tombstoneEpoch(ctx context.Context, p purge) (uint64, bool) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := n.stream.GetMsg(rctx, p.upTo)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false // purged already
	}
	if err != nil {
		n.log.Warn("cannot read a tombstone to purge: retrying later", "session", p.id, "stream_seq", p.upTo, "err", err)
		p.due = time.Now().Add(purgeRetry)
		n.purges.add(p)
		return 0, false
	}
	st, err := snapshot.FromRaw(n.cfg.Subjects, n.cfg.Sealer, raw)
	if err != nil || !st.Tombstone || st.Session != p.id {
		n.log.Warn("not purging a session: its tombstone is not valid", "session", p.id, "stream_seq", p.upTo, "err", err)
		return 0, false
	}
	return st.Epoch, true
}

// scanStall is how long scanTombstones waits for a message before it
// concludes it was given everything.
const scanStall = 2 * time.Second

// scanTombstones schedules the purge of every ended session the stream
// holds (its newest message a tombstone), by when the tombstone was
// stored. It reads headers only. A new primary runs it once it serves.
func (n *Node) scanTombstones(ctx context.Context, epoch uint64) {
	if n.cfg.Retention < 0 {
		return
	}
	cons, err := n.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{n.cfg.Subjects.SessionFilter()},
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		HeadersOnly:       true,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		n.log.Warn("scan for ended sessions to purge", "err", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if info := cons.CachedInfo(); info != nil {
			n.stream.DeleteConsumer(dctx, info.Name)
		}
	}()
	if cons.CachedInfo().NumPending == 0 {
		return
	}
	iter, err := cons.Messages()
	if err != nil {
		n.log.Warn("scan for ended sessions to purge", "err", err)
		return
	}
	defer iter.Stop()
	found := 0
	for n.epoch.Load() == epoch && n.serving.Load() {
		msg, err := iter.Next(jetstream.NextMaxWait(scanStall))
		if err != nil {
			break
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		if msg.Headers().Get(snapshot.HeaderTombstone) == "1" {
			if raw, err := n.cfg.Subjects.SessionID(msg.Subject()); err == nil {
				if id, err := model.ParseSessionID(raw); err == nil {
					n.schedulePurge(id, md.Sequence.Stream, md.Timestamp, 0)
					found++
				}
			}
		}
		if md.NumPending == 0 {
			break
		}
	}
	n.log.Info("ended sessions scheduled for purging", "sessions", found, "retention", n.cfg.Retention)
}
