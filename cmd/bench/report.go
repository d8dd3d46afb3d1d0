package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Units of a row's figures.
const (
	unitMicros = "µs"
	unitMillis = "ms"
	unitSecs   = "s"
	unitRate   = "/s"
	unitRatio  = "×"
	unitBytes  = "B"
	unitMiB    = "MiB"
	unitCount  = ""
)

// Report is everything one run of the benchmark measured: what the table
// shows and the JSON file holds.
type Report struct {
	Command  string         `json:"command"`
	Started  time.Time      `json:"started"`
	Took     string         `json:"took"`
	Quick    bool           `json:"quick"`
	Machine  Machine        `json:"machine"`
	Settings map[string]any `json:"settings"`
	Sections []*Section     `json:"sections"`
	Goals    []Goal         `json:"goals"`
}

// Section is one measurement: its rows, in the order the table shows them.
type Section struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Note  string `json:"note,omitempty"`
	Rows  []*Row `json:"rows"`
}

// Row is one figure: the median, min and max of its runs. A ratio row's
// runs are ratios of figures measured in the same run.
type Row struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Runs   int       `json:"runs"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values,omitempty"`
	// Unavailable says why the row has no figures (redis-server missing,
	// a measurement that failed).
	Unavailable string `json:"unavailable,omitempty"`
	Note        string `json:"note,omitempty"`
	// Pooled, when PooledN > 0, is the figure over every sample of every
	// run together (failover: every session of every injury).
	Pooled  float64 `json:"pooled,omitempty"`
	PooledN int     `json:"pooled_n,omitempty"`
}

// Goal is one of the goals the figures are judged against.
type Goal struct {
	ID       string `json:"id"`
	Goal     string `json:"goal"`
	Row      string `json:"row"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Met is nil when the figure is unavailable.
	Met *bool `json:"met"`
}

// section returns the section of id, adding it if needed.
func (r *Report) section(id, title string) *Section {
	for _, s := range r.Sections {
		if s.ID == id {
			return s
		}
	}
	s := &Section{ID: id, Title: title}
	r.Sections = append(r.Sections, s)
	return s
}

// row returns the row of id, or nil.
func (r *Report) row(id string) *Row {
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if row.ID == id {
				return row
			}
		}
	}
	return nil
}

// add appends a row summarizing values (one per run).
func (s *Section) add(id, name, unit string, values []float64) *Row {
	row := &Row{ID: s.ID + "." + id, Name: name, Unit: unit}
	row.set(values)
	s.Rows = append(s.Rows, row)
	return row
}

// unavailable appends a row without figures.
func (s *Section) unavailable(id, name, unit, why string) *Row {
	row := &Row{ID: s.ID + "." + id, Name: name, Unit: unit, Unavailable: why}
	s.Rows = append(s.Rows, row)
	return row
}

func (row *Row) set(values []float64) {
	vals := slices.DeleteFunc(slices.Clone(values), math.IsNaN)
	if len(vals) == 0 {
		if row.Unavailable == "" {
			row.Unavailable = "no figures"
		}
		return
	}
	row.Values = vals
	row.Runs = len(vals)
	row.Median, row.Min, row.Max = summary(vals)
}

// ratios returns a[i]/b[i] for each run both have.
func ratios(a, b []float64) []float64 {
	out := make([]float64, 0, min(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		if b[i] > 0 && !math.IsNaN(a[i]) && !math.IsNaN(b[i]) {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// summary returns the median, min and max of vals (not empty).
func summary(vals []float64) (median, lo, hi float64) {
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method, or NaN for no samples.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

func micros(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return float64(d) / float64(time.Microsecond)
}

func millis(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return float64(d) / float64(time.Millisecond)
}

// format writes a figure in its unit.
func format(v float64, unit string) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch unit {
	case unitRatio:
		return strconv.FormatFloat(v, 'f', 2, 64) + "×"
	case unitMicros:
		if v >= 10_000 {
			return strconv.FormatFloat(v/1000, 'f', 1, 64) + " ms"
		}
		return group3(v, 0) + " µs"
	case unitMillis:
		if v < 10 {
			return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
		}
		if v < 100 {
			return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
		}
		return group3(v, 0) + " ms"
	case unitSecs:
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case unitRate:
		return group3(v, 0) + "/s"
	case unitBytes:
		return group3(v, 0) + " B"
	case unitMiB:
		return strconv.FormatFloat(v, 'f', 1, 64) + " MiB"
	}
	return group3(v, 0)
}

// group3 formats v with thousands separators.
func group3(v float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// Markdown writes the report as Markdown tables: one per section, then
// the goals.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "## understudy benchmark\n\n")
	fmt.Fprintf(w, "`%s` — %s, took %s%s.\n\n", r.Command, r.Started.Format("2006-01-02 15:04 MST"), r.Took, map[bool]string{true: " (quick mode)"}[r.Quick])
	fmt.Fprintf(w, "Machine: %s.\n\n", r.Machine.String())
	fmt.Fprintf(w, "Each figure is the median of its runs, with the smallest and largest; a ratio is computed within each run, then summarized. Absolute figures belong to this machine; ratios are the comparison.\n\n")
	// Sections in the order of their numbers, whatever order they ran in.
	sections := slices.Clone(r.Sections)
	slices.SortStableFunc(sections, func(a, b *Section) int { return strings.Compare(a.Title, b.Title) })
	for _, s := range sections {
		fmt.Fprintf(w, "### %s\n\n", s.Title)
		if s.Note != "" {
			fmt.Fprintf(w, "%s\n\n", s.Note)
		}
		fmt.Fprintf(w, "| measurement | median | min | max | runs |\n|---|---:|---:|---:|---:|\n")
		for _, row := range s.Rows {
			name := row.Name
			if row.PooledN > 0 {
				name += fmt.Sprintf(" — all %s samples: **%s**", group3(float64(row.PooledN), 0), format(row.Pooled, row.Unit))
			}
			if row.Note != "" {
				name += " (" + row.Note + ")"
			}
			if row.Unavailable != "" {
				fmt.Fprintf(w, "| %s | unavailable: %s | | | 0 |\n", name, row.Unavailable)
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %d |\n", name, format(row.Median, row.Unit), format(row.Min, row.Unit), format(row.Max, row.Unit), row.Runs)
		}
		fmt.Fprintln(w)
	}
	if len(r.Goals) == 0 {
		return
	}
	fmt.Fprintf(w, "### Goals\n\nA goal not met is a finding, reported as measured.\n\n| goal | target | measured (median unless stated) | met |\n|---|---|---:|:---:|\n")
	for _, g := range r.Goals {
		met := "n/a"
		if g.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*g.Met]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.Goal, g.Target, g.Measured, met)
	}
	fmt.Fprintln(w)
}

// ReadJSON reads a report WriteJSON wrote.
func ReadJSON(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// goal judges a row's median against a target: the figure must be at most
// (atMost) or at least the target.
func (r *Report) goal(id, text, rowID string, atMost bool, target float64) {
	row := r.row(rowID)
	g := Goal{ID: id, Goal: text, Row: rowID}
	unit := ""
	if row != nil {
		unit = row.Unit
	}
	cmp := "≥ "
	if atMost {
		cmp = "≤ "
	}
	g.Target = cmp + format(target, unit)
	switch {
	case row == nil:
		g.Measured = "not measured"
	case row.Unavailable != "":
		g.Measured = "unavailable: " + row.Unavailable
	default:
		v := row.Median
		g.Measured = format(v, row.Unit)
		if row.PooledN > 0 {
			v = row.Pooled
			g.Measured = format(v, row.Unit) + " (all samples)"
		}
		met := v >= target
		if atMost {
			met = v <= target
		}
		g.Met = &met
	}
	r.Goals = append(r.Goals, g)
}
