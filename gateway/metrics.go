package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	requestSeconds   prometheus.Histogram
	retries          prometheus.Counter
	busy             prometheus.Counter
	signals          *prometheus.CounterVec
	detectionSeconds prometheus.Histogram
	promotionSeconds prometheus.Histogram
}

func newMetrics(g *Gateway) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_gateway_requests_total", Help: "Requests by status code."}, []string{"code"})
	m.requestSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_gateway_request_seconds",
		Help: "Time to answer a request, retries and failovers included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_gateway_retries_total", Help: "Attempts retried on another owner or after a failover."})
	m.signals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "understudy_gateway_failover_signals_total", Help: "Failover signals sent, by reason."}, []string{"reason"})
	m.detectionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_gateway_detection_seconds",
		Help: "Lease age when stopped renewals were detected.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)})
	m.promotionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "understudy_gateway_promotion_seconds",
		Help: "From detecting a failure to the new primary's reply.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	m.busy = prometheus.NewCounter(prometheus.CounterOpts{Name: "understudy_gateway_busy_total", Help: "Attempts a primary turned away as busy (503 busy), retried on it after a pause."})
	for _, c := range []prometheus.Collector{m.requests, m.requestSeconds, m.retries, m.busy, m.signals, m.detectionSeconds, m.promotionSeconds} {
		reg.MustRegister(c)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_gateway_backups", Help: "Live backups of the group, from their heartbeats."},
		func() float64 { return float64(g.mon.Status(3e9).Backups()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_gateway_owner_epoch", Help: "The group's epoch as routed to."},
		func() float64 { e, _ := g.owner(); return float64(e.Epoch) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_gateway_window", Help: "Attempts the gateway sends the owner at once: MaxInFlight, less while the owner answers busy."},
		func() float64 { l, _, _ := g.places.state(); return float64(l) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "understudy_gateway_waiting", Help: "Requests waiting in the gateway for a place in the window."},
		func() float64 { _, _, w := g.places.state(); return float64(w) }))
	reg.MustRegister(collectors.NewGoCollector())
	return m
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }
