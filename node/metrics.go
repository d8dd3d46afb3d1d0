package node

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	quarantined        prometheus.Counter
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
		Help: "Interactions by result: ok, invalid, stale, diverged, not_replicated, expired, csrf, rate_limited, too_large, bad_session, quarantined, error."}, []string{"result"})
	m.interactionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_interaction_seconds",
		Help: "Time to handle an interaction that was answered, replication included.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)})
	m.publishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_publish_seconds",
		Help: "Time from publishing a snapshot to its JetStream ack.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	m.snapshotBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_snapshot_bytes",
		Help: "Size of published snapshots.", Buckets: prometheus.ExponentialBuckets(256, 2, 12)})
	m.unavailable = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_unavailable_total",
		Help: "Requests answered 503, by reason: backup, draining, lease, broker, capacity, retry, busy."}, []string{"reason"})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_sessions_ended_total",
		Help: "Sessions ended with a tombstone, by why: finished, idle, erased."}, []string{"why"})
	m.purged = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_sessions_purged_total",
		Help: "Ended sessions whose history was purged from the stream once their retention had passed."})
	m.failovers = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_promotions_total", Help: "Times this node became the primary."})
	m.fenced = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_fenced_total", Help: "Publishes refused because another node owns the session, and demotions."})
	m.fencedOver = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_published_over_fenced_total", Help: "Publishes that replaced a fenced snapshot."})
	m.readsUnderFence = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_reads_under_fence_total", Help: "Sessions read from the stream leader because the copy's newest message of them was fenced or unread."})
	m.quarantined = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_quarantined_total", Help: "Snapshots that could not be used: corrupt, unknown application or step."})
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
	for _, outcome := range []string{"landed", "failed"} {
		m.renewals.WithLabelValues(outcome) // present from the start, at 0
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
