package main

import (
	"bufio"
	"context"
	"fmt"
	"image/color"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"understudy/bench/shopper"
	"understudy/gateway"
	"understudy/node"
)

// overloadLevels are the offered loads, as multiples of the rate that
// saturates the machine.
var overloadLevels = []float64{1, 2, 4}

// maxOutstanding bounds the requests the open-loop client has out at once:
// past it an arrival is not sent and counted as such (a client-side
// shed, reported beside the server's). It is far above what admission
// lets in, so that the client measures the system, not itself.
const maxOutstanding = 4096

// overloadLevel is what one offered load did.
type overloadLevel struct {
	offered, sent, acked float64 // per second
	p50, p99, max        time.Duration
	notSent              int64
	errors               map[string]int64 // "503 busy": how many answers
	failovers            int
	failedRenewals       float64
	busyShed             float64 // the gateway's 503 busy to clients
}

// overload finds the rate that saturates the machine (the closed-loop
// throughput of -clients sessions), then offers 1×, 2× and 4× that rate
// open loop, each for -overload-duration, and counts what a person would
// notice: latency, errors, and failovers of a primary that was alive.
func (b *bench) overload(ctx context.Context) error {
	sec := b.rep.section("overload", "6. Overload: offered load beyond what the machine carries")
	spec := stackSpec{id: "overload", title: "understudy, fsync every write", kind: understudyStack, dur: b.durabilities()[0]}
	b.progress("overload: starting a stack (fsync every write, lease %s)", b.cfg.lease)
	st, err := b.startStack(ctx, spec)
	if err != nil {
		return err
	}
	defer st.close()
	sat, err := b.load(ctx, st)
	if err != nil {
		return fmt.Errorf("saturation: %w", err)
	}
	b.progress("overload: %d closed-loop clients saturate at %s", b.cfg.clients, format(sat.rate, unitRate))
	sec.Note = fmt.Sprintf("The stack of section 3 with fsync on every write and the default lease (%s), nodes with the default admission control (-max-in-flight %d, -admission-wait %s) and the gateway's default -busy-for (%s). "+
		"Saturation: the closed-loop throughput of %s clients at no think time, measured first (%s). Then requests arrive open loop, at a fixed rate regardless of answers, at each multiple of it for %s: "+
		"each arrival answers the next page of an idle session (a new session when none is idle; the client keeps at most %s requests out and counts the arrivals it could not send). "+
		"Latency is of the interactions answered 200; errors are every other answer a client got, by status and reason; failovers count the epochs the group went through (the primary was alive throughout); "+
		"failed renewals are the primary's (understudy_lease_renewals_total).",
		b.cfg.lease, node.DefaultMaxInFlight, node.DefaultAdmissionWait, gateway.DefaultBusyFor, group3(float64(b.cfg.clients), 0), format(sat.rate, unitRate), b.cfg.overloadDuration, group3(maxOutstanding, 0))
	var levels []overloadLevel
	for _, k := range overloadLevels {
		lv, err := b.offer(ctx, st, k*sat.rate, b.cfg.overloadDuration)
		if err != nil {
			return fmt.Errorf("offered %.0f×: %w", k, err)
		}
		levels = append(levels, lv)
		b.progress("overload %.0f×: offered %s, answered %s, p99 %s, max %s, errors %v, failovers %d, failed renewals %.0f",
			k, format(lv.offered, unitRate), format(lv.acked, unitRate), format(millis(lv.p99), unitMillis), format(millis(lv.max), unitMillis), lv.errors, lv.failovers, lv.failedRenewals)
		id := fmt.Sprintf("%.0fx", k)
		name := fmt.Sprintf("offered %.0f× saturation", k)
		sec.add(id+".offered", name+": offered", unitRate, []float64{lv.offered})
		sec.add(id+".acked", name+": answered 200", unitRate, []float64{lv.acked})
		sec.add(id+".p50", name+": p50", unitMillis, []float64{millis(lv.p50)})
		sec.add(id+".p99", name+": p99", unitMillis, []float64{millis(lv.p99)})
		sec.add(id+".max", name+": max", unitMillis, []float64{millis(lv.max)})
		row := sec.add(id+".errors", name+": answers not 200", unitCount, []float64{float64(sum(lv.errors))})
		row.Note = describeErrors(lv.errors)
		if lv.notSent > 0 {
			row.Note += fmt.Sprintf("; %s arrivals not sent (client at %s outstanding)", group3(float64(lv.notSent), 0), group3(maxOutstanding, 0))
		}
		sec.add(id+".failovers", name+": failovers of a live primary", unitCount, []float64{float64(lv.failovers)})
		sec.add(id+".failed_renewals", name+": failed lease renewals", unitCount, []float64{lv.failedRenewals})
	}
	if b.cfg.overloadPlot != "" {
		if err := plotOverload(b.cfg.overloadPlot, sat.rate, levels); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		b.progress("overload: plot written to %s", b.cfg.overloadPlot)
	}
	return nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func describeErrors(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %s", k, group3(float64(m[k]), 0)))
	}
	return strings.Join(parts, ", ")
}

// statusOf reads "status 503 (busy)" out of a shopper's error.
var statusOf = regexp.MustCompile(`status (\d+) \(([^)]*)\)`)

// offer sends interactions open loop at rate per second for d, and
// reports what came back.
func (b *bench) offer(ctx context.Context, st *stack, rate float64, d time.Duration) (overloadLevel, error) {
	tr := shopper.Transport(maxOutstanding + 16)
	defer tr.CloseIdleConnections()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := make(chan *shopper.Shopper, 1<<16)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     = map[string]int64{}
		out      atomic.Int64
		notSent  atomic.Int64
		sent     atomic.Int64
		requests sync.WaitGroup
	)
	var firstTransport string
	fail := func(err error) {
		k := "transport"
		if m := statusOf.FindStringSubmatch(err.Error()); m != nil {
			k = strings.TrimSpace(m[1] + " " + m[2])
		}
		mu.Lock()
		errs[k]++
		if k == "transport" && firstTransport == "" {
			firstTransport = err.Error()
		}
		mu.Unlock()
	}
	one := func() {
		defer requests.Done()
		defer out.Add(-1)
		var s *shopper.Shopper
		select {
		case s = <-idle:
		default:
			s = shopper.New(int(customers.Add(1)), st.url, tr)
			if err := s.Start(lctx); err != nil {
				if lctx.Err() == nil {
					fail(err)
				}
				return
			}
		}
		a, err := s.Step(lctx)
		if lctx.Err() != nil {
			return
		}
		if err != nil {
			fail(err)
		} else {
			mu.Lock()
			lat = append(lat, a.Took())
			mu.Unlock()
		}
		if !s.Finished() {
			select {
			case idle <- s: // a person who got an error presses again later
			default:
			}
		}
	}
	g0, _ := st.group()
	m0 := st.primaryMetrics()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for now := start; now.Sub(start) < d; now = <-tick.C {
		due := int64(rate * now.Sub(start).Seconds())
		for sent.Load()+notSent.Load() < due {
			if out.Load() >= maxOutstanding {
				notSent.Add(1)
				continue
			}
			out.Add(1)
			sent.Add(1)
			requests.Add(1)
			go one()
		}
		if ctx.Err() != nil {
			break
		}
	}
	tick.Stop()
	took := time.Since(start)
	// What was sent is answered (or shed by the gateway within its busy
	// wait) before the figures are read.
	requests.Wait()
	g1, _ := st.group()
	m1 := st.primaryMetrics()
	if ctx.Err() != nil {
		return overloadLevel{}, ctx.Err()
	}
	if firstTransport != "" {
		b.progress("  the first answer that never came: %s", firstTransport)
	}
	slices.Sort(lat)
	lv := overloadLevel{offered: rate, sent: float64(sent.Load()) / took.Seconds(), acked: float64(len(lat)) / took.Seconds(),
		notSent: notSent.Load(), errors: errs, failovers: int(g1.Epoch) - int(g0.Epoch),
		failedRenewals: m1[`understudy_lease_renewals_total{outcome="failed"}`] - m0[`understudy_lease_renewals_total{outcome="failed"}`]}
	if len(lat) > 0 {
		lv.p50, lv.p99, lv.max = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
	}
	return lv, nil
}

// primaryMetrics scrapes the owner's /metrics: sample name with labels ->
// value. Empty if it cannot be read.
func (st *stack) primaryMetrics() map[string]float64 {
	out := map[string]float64{}
	gs, err := st.group()
	if err != nil || gs.Owner == "" {
		return out
	}
	resp, err := statusClient.Get(st.local.NodeURL(gs.Owner) + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// plotOverload draws offered load against what was answered and its p99.
func plotOverload(path string, sat float64, levels []overloadLevel) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Offered load against throughput and p99 (saturation %s)", format(sat, unitRate))
	p.X.Label.Text = "offered interactions per second"
	p.Y.Label.Text = "interactions per second answered 200"
	var thr, offered plotter.XYs
	var lats plotter.XYLabels
	for _, lv := range levels {
		thr = append(thr, plotter.XY{X: lv.offered, Y: lv.acked})
		offered = append(offered, plotter.XY{X: lv.offered, Y: lv.offered})
		lats.XYs = append(lats.XYs, plotter.XY{X: lv.offered, Y: lv.acked})
		lats.Labels = append(lats.Labels, fmt.Sprintf("  p99 %s, errors %d, failovers %d", format(millis(lv.p99), unitMillis), sum(lv.errors), lv.failovers))
	}
	ideal, err := plotter.NewLine(offered)
	if err != nil {
		return err
	}
	ideal.LineStyle.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	ideal.LineStyle.Color = color.Gray{Y: 140}
	got, points, err := plotter.NewLinePoints(thr)
	if err != nil {
		return err
	}
	got.LineStyle.Color = color.RGBA{B: 200, A: 255}
	points.Color = color.RGBA{B: 200, A: 255}
	labels, err := plotter.NewLabels(lats)
	if err != nil {
		return err
	}
	p.Add(ideal, got, points, labels)
	p.Legend.Add("everything offered answered", ideal)
	p.Legend.Add("answered 200", got, points)
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min = 0
	p.X.Min = 0
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}
