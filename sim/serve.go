package sim

import "time"

// Statuses a node answers with.
const (
	ok200       = 200
	gone410     = 410
	broken500   = 500
	unavailable = 503
)

// request is one attempt of a client's interaction, sent by the gateway.
type request struct {
	session int
	seq     uint64 // the interaction sequence the client is at
	reply   func(status int, told uint64, why string)
}

// serve handles a request the way node/ does: the answer rule, one
// request per session at a time, memory that is the truth at an epoch.
func (n *node) serve(r *request) {
	w := n.w
	bug := w.cfg.Bugs
	if !n.serving || !n.m.Valid(n.local()) {
		r.reply(unavailable, 0, "lease")
		return
	}
	if n.quarantined[r.session] {
		r.reply(broken500, 0, "quarantined")
		return
	}
	mm := n.mem[r.session]
	if mm != nil && mm.busy {
		mm.queue = append(mm.queue, r)
		return
	}
	if mm == nil || mm.epoch != n.epoch {
		// Not in memory at this epoch: the copy is the truth.
		st, held := n.lookup(r.session)
		if held == absent && n.paused && r.seq != 0 {
			// A paused copy does not know what others wrote: a session a
			// client holds is looked for in the stream.
			held = mustRead
		}
		switch {
		case held == mustRead && (w.now < w.noLeader || w.lossy && w.now < w.faultsEnd && w.rnd.IntN(4) == 0):
			// The stream leader does not answer (an election).
			if bug.QuarantineTransient {
				n.quarantined[r.session] = true
				r.reply(broken500, 0, "quarantined after a transient read error")
				return
			}
			r.reply(unavailable, 0, "broker")
			return
		case held == mustRead:
			var ok bool
			if st, ok = w.newestValid(r.session, n.claims, 0); !ok {
				held = absent
			} else {
				n.held[r.session] = st
				held = valid
			}
		}
		switch {
		case held == valid:
			mm = &memory{seq: st.seq, epoch: n.epoch, track: st.streamSeq}
		case r.seq == 0:
			mm = &memory{epoch: n.epoch}
		default:
			r.reply(gone410, 0, "no such session")
			return
		}
		if old := n.mem[r.session]; old != nil {
			mm.queue = old.queue
		}
		n.mem[r.session] = mm
	}
	if r.seq != mm.seq {
		// Stale (a retry of an interaction that was applied): show where
		// the session is, under the answer rule.
		if !n.m.MayAnswer(n.local(), mm.epoch) {
			r.reply(unavailable, 0, "lease")
			return
		}
		r.reply(ok200, mm.seq, "stale")
		return
	}
	next, epoch := mm.seq+1, mm.epoch
	mm.busy = true
	if bug.AnswerBeforeAck {
		mm.seq = next
		r.reply(ok200, next, "before the ack")
		r = &request{session: r.session, seq: r.seq, reply: func(int, uint64, string) {}}
	}
	n.publish(r, mm, next, epoch, 0)
}

// publish stores the snapshot of interaction next, applied at epoch, with
// the expected last subject sequence, and answers once it is acknowledged.
func (n *node) publish(r *request, mm *memory, next, epoch uint64, hops int) {
	w := n.w
	if mm.unsure {
		// The last publish's outcome was not learned: read the stream
		// first (the publisher's resync).
		if top, ok := w.top(r.session); ok && top.streamSeq != mm.track {
			n.conflict(r, mm, next, epoch, top, hops)
			return
		}
		mm.unsure = false
	}
	expect := mm.track
	done := false
	finish := func(status int, told uint64, why string) {
		if done {
			return
		}
		done = true
		mm.busy = false
		r.reply(status, told, why)
		n.unqueue(mm)
	}
	// The publish leaves after the request's processing, on the node's
	// time: a pause here is the zombie's publish that lands late. Its
	// timeout runs from when it leaves.
	n.on(time.Duration(w.rnd.IntN(2000))*time.Microsecond, func() {
		n.on(publishLimit, func() {
			if done {
				return
			}
			mm.unsure = true
			finish(unavailable, 0, "broker")
		})
		if w.lost() {
			return
		}
		inc := n.inc
		hop := w.delay()
		if n.stallUntil > w.now {
			hop += time.Duration(n.stallUntil - w.now)
		}
		w.after(hop, func() {
			w.leader(func() {
				top, exists := w.top(r.session)
				var landed msg
				wrong := (exists && top.streamSeq != expect) || (!exists && expect != 0)
				if !wrong || w.cfg.Bugs.NoExpectedSeq {
					landed = msg{streamSeq: uint64(len(w.stream)) + 1, session: r.session, seq: next, epoch: epoch, node: n.name}
					w.stream = append(w.stream, landed)
					w.trace("%s stored session %d seq %d epoch %d at %d", n.name, r.session, next, epoch, landed.streamSeq)
					for _, o := range w.nodes {
						if o.up {
							o.deliver(len(w.stream))
						}
					}
				}
				if w.lost() || n.inc != inc {
					return
				}
				n.on(w.delay(), func() {
					if done {
						return
					}
					if landed.streamSeq == 0 {
						done = true
						mm.busy = false
						n.conflict(r, mm, next, epoch, top, hops)
						return
					}
					n.acked(mm, next, epoch, landed, finish)
				})
			})
		})
	})
}

// acked applies the answer rule to an acknowledged publish. Whatever it
// answers, the memory is the acknowledged state.
func (n *node) acked(mm *memory, next, epoch uint64, landed msg, finish func(int, uint64, string)) {
	mm.track = landed.streamSeq
	n.own(landed)
	refused := !n.m.MayAnswer(n.local(), epoch)
	if !refused || !n.w.cfg.Bugs.ForgetAfterRefusal {
		mm.seq, mm.epoch = next, epoch
	}
	if refused {
		finish(unavailable, 0, "lease")
		return
	}
	finish(ok200, next, "applied")
}

// conflict handles a publish refused for its expected sequence, as the
// publisher does: over a fenced snapshot it publishes again; its own
// landed snapshot it adopts; another node's means it lost the session.
func (n *node) conflict(r *request, mm *memory, next, epoch uint64, top msg, hops int) {
	w := n.w
	switch {
	case n.claims.Fenced(top.epoch, top.streamSeq) && hops < 8:
		mm.track, mm.unsure, mm.busy = top.streamSeq, false, true
		n.publish(r, mm, next, epoch, hops+1)
		return
	case top.node == n.name && top.epoch == epoch:
		mm.seq, mm.epoch, mm.track, mm.unsure = top.seq, top.epoch, top.streamSeq, false
		n.own(top)
		if n.m.MayAnswer(n.local(), mm.epoch) {
			r.reply(ok200, mm.seq, "diverged")
		} else {
			r.reply(unavailable, 0, "lease")
		}
	default:
		delete(n.mem, r.session)
		r.reply(unavailable, 0, "fenced")
		w.trace("%s: session %d fenced by %s's epoch %d", n.name, r.session, top.node, top.epoch)
	}
	mm.busy = false
	n.unqueue(mm)
}

func (n *node) unqueue(mm *memory) {
	if len(mm.queue) == 0 {
		return
	}
	r := mm.queue[0]
	mm.queue = mm.queue[1:]
	n.on(0, func() { n.serve(r) })
}

// What the copy holds of a session (subscriber.Held).
type holding uint8

const (
	absent holding = iota
	valid
	mustRead
)

// lookup is the copy's Lookup: a held snapshot the claims now fence means
// the stream must be read; fenced never means absent.
func (n *node) lookup(s int) (msg, holding) {
	m, ok := n.held[s]
	switch {
	case !ok:
		return msg{}, absent
	case !n.claims.Fenced(m.epoch, m.streamSeq):
		return m, valid
	case n.w.cfg.Bugs.FencedIsAbsent:
		return msg{}, absent
	}
	return msg{}, mustRead
}
