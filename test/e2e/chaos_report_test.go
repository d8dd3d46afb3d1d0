//go:build e2e

package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chaosHistory is a chaos run as its JSON report has it: every attempt of
// every client, every injury, and the counts. Times are milliseconds since
// the run started.
type chaosHistory struct {
	Test     string         `json:"test"`
	Start    time.Time      `json:"start"`
	Summary  string         `json:"summary"`
	Counts   map[string]int `json:"counts"`
	Injuries []injuryAt     `json:"injuries"`
	Attempts []attemptAt    `json:"attempts"`
}

type injuryAt struct {
	injury
	StartMs float64 `json:"start_ms"`
	EndMs   float64 `json:"end_ms"`
}

type attemptAt struct {
	Client  int     `json:"client"`
	Session string  `json:"session"`
	Seq     uint64  `json:"seq"`
	Read    bool    `json:"read,omitempty"`
	Known   bool    `json:"known"`            // a 200 came back
	Answer  uint64  `json:"answer,omitempty"` // the seq of the page that came back
	CallMs  float64 `json:"call_ms"`
	Latency float64 `json:"latency_ms"`
}

func msSince(start time.Time, t time.Time) float64 {
	return float64(t.Sub(start).Microseconds()) / 1000
}

// writeChaosReport writes <dir>/<test>.json and <dir>/<test>.png.
func writeChaosReport(dir, test string, start time.Time, h *history, injuries []injury, r chaosReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := strings.NewReplacer("/", "-", " ", "_").Replace(test)
	out := chaosHistory{Test: test, Start: start, Summary: r.String(), Counts: map[string]int{
		"sessions": r.sessions, "interactions_acknowledged": r.acked, "injuries": r.injuries,
		"lost": r.lost, "duplicated": r.duplicated, "visible_errors": r.visible, "failed_sessions": r.failed,
		"attempts_without_answer": r.noReply,
	}}
	for _, in := range injuries {
		out.Injuries = append(out.Injuries, injuryAt{injury: in, StartMs: msSince(start, in.Start), EndMs: msSince(start, in.End)})
	}
	h.mu.Lock()
	for _, op := range h.ops {
		in, o := op.Input.(submit), op.Output.(outcome)
		call := time.Unix(0, op.Call)
		out.Attempts = append(out.Attempts, attemptAt{Client: op.ClientId, Session: in.Session, Seq: in.Seq, Read: in.Read,
			Known: o.Known, Answer: o.Seq, CallMs: msSince(start, call), Latency: float64(op.Return-op.Call) / 1e6})
	}
	h.mu.Unlock()
	b, err := json.Marshal(out) // no indent: a long run has a million attempts
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		return err
	}
	return plotChaos(filepath.Join(dir, name+".png"), out, r)
}

// plotChaos draws every attempt's latency over the run (log scale), the
// attempts without a known outcome in red, and each injury as a vertical
// line in its kind's colour (labelled with it in a short run); the counts
// are in the title.
func plotChaos(path string, h chaosHistory, r chaosReport) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("chaos: %d sessions, %d injuries — lost %d, duplicated %d, visible errors %d, failed sessions %d",
		r.sessions, r.injuries, r.lost, r.duplicated, r.visible, r.failed)
	p.X.Label.Text = "seconds since the start of the run"
	p.Y.Label.Text = "request latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}

	var ok, unknown plotter.XYs
	top := 1.0
	for _, a := range h.Attempts {
		pt := plotter.XY{X: a.CallMs / 1000, Y: max(a.Latency, 0.1)}
		top = max(top, pt.Y)
		if a.Known {
			ok = append(ok, pt)
		} else {
			unknown = append(unknown, pt)
		}
	}
	for _, set := range []struct {
		pts   plotter.XYs
		col   color.Color
		label string
	}{
		{ok, color.NRGBA{R: 30, G: 80, B: 200, A: 90}, "answered"},
		{unknown, color.NRGBA{R: 220, A: 255}, "no answer or not a 200 (retried)"},
	} {
		if len(set.pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(set.pts)
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = set.col
		s.GlyphStyle.Radius = vg.Points(1)
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
		p.Legend.Add(set.label, s)
	}
	// Each kind of injury has its colour and a legend entry; a short run
	// also labels each line with its kind (a long one has too many).
	palette := []color.NRGBA{
		{G: 130, A: 200}, {R: 200, G: 110, A: 200}, {R: 140, B: 160, A: 200}, {G: 140, B: 150, A: 200},
		{R: 120, G: 80, B: 20, A: 200}, {R: 230, G: 40, B: 140, A: 200}, {R: 90, G: 90, B: 90, A: 200},
		{R: 60, G: 160, B: 60, A: 200}, {R: 20, G: 40, B: 120, A: 200}, {R: 180, G: 170, A: 200},
		{R: 100, B: 230, A: 200}, {R: 250, G: 120, B: 80, A: 200},
	}
	colours := map[string]color.NRGBA{}
	var labels plotter.XYLabels
	for _, in := range h.Injuries {
		col, seen := colours[in.Kind]
		if !seen {
			col = palette[len(colours)%len(palette)]
			colours[in.Kind] = col
		}
		x := in.StartMs / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0.1}, {X: x, Y: top * 2}})
		if err != nil {
			return err
		}
		l.LineStyle.Color = col
		l.LineStyle.Width = vg.Points(0.5)
		l.LineStyle.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		if !seen {
			p.Legend.Add(in.Kind, l)
		}
		labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: top * 1.5})
		labels.Labels = append(labels.Labels, in.Kind)
	}
	if n := len(labels.XYs); n > 0 && n <= 40 {
		lb, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].Rotation = -1.5708 // vertical, reading down
			lb.TextStyle[i].Font.Size = vg.Points(7)
			lb.TextStyle[i].Color = color.RGBA{G: 100, A: 255}
		}
		p.Add(lb)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(16*vg.Inch, 6*vg.Inch, path)
}

var chaosReplot = flag.String("chaos.replot", "", "TestChaosReplot: draw the plot of this chaos report (JSON) again, beside it")

// TestChaosReplot draws a report's plot again from its JSON (after a
// change to the plot, without running chaos again):
//
//	go test -tags e2e ./test/e2e -run TestChaosReplot -chaos.replot /tmp/chaos/TestChaos.json
func TestChaosReplot(t *testing.T) {
	if *chaosReplot == "" {
		t.Skip("no -chaos.replot FILE")
	}
	b, err := os.ReadFile(*chaosReplot)
	if err != nil {
		t.Fatal(err)
	}
	var h chaosHistory
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("%s: %v", *chaosReplot, err)
	}
	c := h.Counts
	r := chaosReport{sessions: c["sessions"], injuries: c["injuries"], lost: c["lost"], duplicated: c["duplicated"],
		visible: c["visible_errors"], failed: c["failed_sessions"]}
	out := strings.TrimSuffix(*chaosReplot, ".json") + ".png"
	if err := plotChaos(out, h, r); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}
