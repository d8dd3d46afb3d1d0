package node

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"understudy/cbor"
	"understudy/model"
	"understudy/snapshot"
)

// metrics are the node's Prometheus metrics, in a registry of its own so
// that several nodes can run in one process (tests).
type metrics struct {
	reg                *prometheus.Registry
	interactions       *prometheus.CounterVec
	interactionSeconds prometheus.Histogram
	publishSeconds     prometheus.Histogram
	snapshotBytes      prometheus.Histogram
	unavailable        *prometheus.CounterVec
	ended              *prometheus.CounterVec
	purged             prometheus.Counter
	failovers          prometheus.Counter
	fenced             prometheus.Counter
	fencedOver         prometheus.Counter
	readsUnderFence    prometheus.Counter
	quarantined        *prometheus.CounterVec
	quarantinedNow     quarantineSet
	lag                lagClock
	asyncErrors        prometheus.Counter
	renewals           *prometheus.CounterVec
	renewalSeconds     prometheus.Histogram
	admissionSeconds   prometheus.Histogram
	migrations         *prometheus.CounterVec
	unreadable         *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	m.interactions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_interactions_total",
		Help: "Interactions by result: " + joinLabels(interactionResults) + "."}, []string{"result"})
	m.interactionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_interaction_seconds",
		Help: "Time to handle an interaction that was answered, replication included.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)})
	m.publishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_publish_seconds",
		Help: "Time from publishing a snapshot to its JetStream ack.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	m.snapshotBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_snapshot_bytes",
		Help: "Size of published snapshots.", Buckets: prometheus.ExponentialBuckets(256, 2, 12)})
	m.unavailable = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_unavailable_total",
		Help: "Requests answered 503, by reason: " + joinLabels(unavailableReasons) + "."}, []string{"reason"})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_sessions_ended_total",
		Help: "Sessions ended with a tombstone, by why: " + joinLabels(endedWhys) + "."}, []string{"why"})
	m.purged = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_sessions_purged_total",
		Help: "Ended sessions whose history was purged from the stream once their retention had passed."})
	m.failovers = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_promotions_total", Help: "Times this node became the primary."})
	m.fenced = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_fenced_total", Help: "Publishes refused because another node owns the session, and demotions."})
	m.fencedOver = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_published_over_fenced_total", Help: "Publishes that replaced a fenced snapshot."})
	m.readsUnderFence = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_reads_under_fence_total", Help: "Sessions read from the stream leader because the copy's newest message of them was fenced or unread."})
	m.quarantined = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_quarantined_total",
		Help: "Sessions found unrestorable (each time a snapshot or a request finds one), by reason: " + joinLabels(quarantineReasons) + "."}, []string{"reason"})
	m.asyncErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_async_publish_errors_total", Help: "Async publishes that failed."})
	m.renewals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_lease_renewals_total",
		Help: "Attempts to renew the lease while primary, by outcome: landed, failed."}, []string{"outcome"})
	m.renewalSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_lease_renewal_seconds",
		Help: "Time a lease renewal took, from its send to its answer (on the member's own NATS connection).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)})
	m.admissionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_admission_wait_seconds",
		Help: "Time an interaction waited for a place among those in flight (see -max-in-flight).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)})
	m.migrations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_migrations_total",
		Help: "Application instances of sessions moved to another version at an interaction, by application and outcome: migrated, failed (published unmigrated)."}, []string{"app", "outcome"})
	m.unreadable = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_unreadable_publishes_total",
		Help: "Snapshots published on an application version that a live member of the group announces it cannot materialize, for want of a migration to one it can."}, []string{"app"})
	// Every label is present from the start, at 0: a rate over a counter
	// that appears at its first event misses that event.
	for vec, labels := range map[*prometheus.CounterVec][]string{
		m.renewals: {"landed", "failed"}, m.interactions: interactionResults, m.unavailable: unavailableReasons,
		m.ended: endedWhys, m.quarantined: quarantineReasons,
	} {
		for _, l := range labels {
			vec.WithLabelValues(l)
		}
	}
	for _, a := range n.eng.Registry().Apps() {
		m.migrations.WithLabelValues(a.Name(), "migrated")
		m.migrations.WithLabelValues(a.Name(), "failed")
	}
	for _, key := range n.eng.Registry().Keys() {
		m.unreadable.WithLabelValues(key)
	}
	for _, c := range []prometheus.Collector{m.interactions, m.interactionSeconds, m.publishSeconds, m.snapshotBytes,
		m.unavailable, m.ended, m.purged, m.failovers, m.fenced, m.fencedOver, m.readsUnderFence, m.quarantined, m.asyncErrors,
		m.renewals, m.renewalSeconds, m.admissionSeconds, m.migrations, m.unreadable} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_in_flight", Help: "Requests to the application holding a place (see -max-in-flight)."},
		func() float64 { return float64(n.admit.inFlight()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_sessions", Help: "Live sessions held in memory by this primary."},
		func() float64 { return float64(n.sessions.len()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_held_sessions", Help: "Sessions whose newest snapshot this node holds."},
		func() float64 {
			if !n.started.Load() || n.sub == nil {
				return 0
			}
			return float64(n.sub.Len())
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_replication_lag", Help: "Messages of the session stream not yet handled by this node."},
		func() float64 {
			if !n.started.Load() || n.sub == nil {
				return 0
			}
			return float64(n.sub.Lag())
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_replication_lag_seconds",
		Help: "How long this node's copy of the session stream has not been level with it: 0 when it is (sampled at each heartbeat and scrape)."},
		func() float64 {
			if !n.started.Load() || n.sub == nil {
				return 0
			}
			return m.lag.seconds(n.sub.Lag(), time.Now())
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_caught_up",
		Help: "1 once this node's copy holds everything the stream held when it started (a cold standby reads on demand: 1)."},
		func() float64 {
			if !n.started.Load() {
				return 0
			}
			if n.sub == nil || n.sub.CaughtUp() {
				return 1
			}
			return 0
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_sessions_quarantined",
		Help: "Sessions quarantined now: their newest snapshot cannot be restored (see understudy_quarantined_total for why)."},
		func() float64 {
			var held map[model.SessionID]error
			if n.started.Load() && n.sub != nil {
				held = n.sub.Quarantined()
			}
			return float64(m.quarantinedNow.count(held, n.sessions.hasEnded))
		}))
	nats := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "understudy_nats_connected",
		Help: "1 while the node's NATS connection is up: data (snapshots, the copy) and lease (group membership)."}, []string{"connection"})
	f(gaugeVecFunc{nats, func(set func(label string, v float64)) {
		up := func(connected func() bool) float64 {
			if n.started.Load() && connected() {
				return 1
			}
			return 0
		}
		set("data", up(func() bool { return n.nc.IsConnected() }))
		set("lease", up(func() bool { return n.leaseNC.IsConnected() }))
	}})
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_lease_age_seconds", Help: "Since the group's last lease renewal was seen here."},
		func() float64 {
			if !n.started.Load() {
				return 0
			}
			return n.member.LeaseAge().Seconds()
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_primary", Help: "1 while this node serves as the primary."},
		func() float64 {
			if n.serving.Load() {
				return 1
			}
			return 0
		}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_epoch", Help: "The epoch this node serves at (0 as a backup)."},
		func() float64 { return float64(n.epoch.Load()) }))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// The labels of the node's counters, each present from the start.
var (
	interactionResults = []string{"ok", "invalid", "stale", "diverged", "not_replicated", "expired", "csrf",
		"rate_limited", "too_large", "bad_session", "quarantined", "cannot_move", "error"}
	unavailableReasons = []string{UnavailableBackup, UnavailableDraining, UnavailableLease, UnavailableBroker,
		UnavailableCapacity, UnavailableRetry, UnavailableBusy}
	endedWhys         = []string{"finished", "idle", "erased"}
	quarantineReasons = []string{"decode", "sealed", "bad_message", "history_lost", "unknown_app", "unknown_version",
		"unknown_step", "corrupt", "limit", "bad_session_id", "other"}
)

func joinLabels(ls []string) string { return strings.Join(ls, ", ") }

// quarantineReason names why a session's snapshot cannot be restored, for
// the quarantines counter.
func quarantineReason(err error) string {
	var de *cbor.DecodeError
	switch {
	case errors.As(err, &de):
		return "decode"
	case errors.Is(err, snapshot.ErrSealed):
		return "sealed"
	case errors.Is(err, snapshot.ErrHistoryLost):
		return "history_lost"
	case errors.Is(err, snapshot.ErrBadMessage):
		return "bad_message"
	case errors.Is(err, model.ErrUnknownApp):
		return "unknown_app"
	case errors.Is(err, model.ErrUnknownVersion):
		return "unknown_version"
	case errors.Is(err, model.ErrUnknownStep):
		return "unknown_step"
	case errors.Is(err, model.ErrCorruptSession):
		return "corrupt"
	case errors.Is(err, model.ErrLimit):
		return "limit"
	case errors.Is(err, model.ErrBadSessionID):
		return "bad_session_id"
	}
	return "other"
}

// quarantine counts a session found unrestorable and keeps it among those
// quarantined now.
func (m *metrics) quarantine(id model.SessionID, err error) {
	m.quarantined.WithLabelValues(quarantineReason(err)).Inc()
	m.quarantinedNow.add(id)
}

// quarantineSet is the sessions this node found unrestorable when it
// loaded them; the copy keeps those it found so itself.
type quarantineSet struct {
	mu  sync.Mutex
	ids map[model.SessionID]struct{}
}

func (q *quarantineSet) add(id model.SessionID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ids == nil {
		q.ids = map[model.SessionID]struct{}{}
	}
	q.ids[id] = struct{}{}
}

// count returns how many sessions are quarantined now: those found here
// and those the copy holds as quarantined, once each; a session that has
// ended (erased by an operator) is no longer counted.
func (q *quarantineSet) count(held map[model.SessionID]error, ended func(model.SessionID) bool) int {
	q.mu.Lock()
	ids := make([]model.SessionID, 0, len(q.ids))
	for id := range q.ids {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	n := len(held)
	for _, id := range ids {
		if ended(id) { // asked without q.mu: ended takes the session table's lock
			q.mu.Lock()
			delete(q.ids, id)
			q.mu.Unlock()
			continue
		}
		if _, ok := held[id]; !ok {
			n++
		}
	}
	return n
}

// lagClock measures replication lag in time: how long the copy has not
// been level with the stream. The copy counts what it has not handled; a
// count says nothing about how old the oldest of them is, so the clock
// notes when the count was last seen at 0.
type lagClock struct {
	mu    sync.Mutex
	level time.Time // last seen with nothing pending
}

// observe notes the copy's pending count at now.
func (c *lagClock) observe(pending uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pending == 0 || c.level.IsZero() {
		c.level = now
	}
}

// seconds returns how long the copy has not been level, as of now.
func (c *lagClock) seconds(pending uint64, now time.Time) float64 {
	c.observe(pending, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	if pending == 0 {
		return 0
	}
	return now.Sub(c.level).Seconds()
}

// gaugeVecFunc is a gauge vector whose values are read at each scrape.
type gaugeVecFunc struct {
	vec  *prometheus.GaugeVec
	read func(set func(label string, v float64))
}

func (g gaugeVecFunc) Describe(ch chan<- *prometheus.Desc) { g.vec.Describe(ch) }

func (g gaugeVecFunc) Collect(ch chan<- prometheus.Metric) {
	g.read(func(label string, v float64) { g.vec.WithLabelValues(label).Set(v) })
	g.vec.Collect(ch)
}
