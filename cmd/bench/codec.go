package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// codec runs the snapshot codec's own benchmark (cbor's BenchmarkCodec:
// encode + decode of a realistic session, against gob and JSON over plain
// mirror types) -runs times and reads its output.
func (b *bench) codec(ctx context.Context) error {
	sec := b.rep.section("codec", "6. Codec: encode + decode of one snapshot")
	sec.Note = "cbor's `BenchmarkCodec`: a quote with 12 drivers waiting three applications deep (61 steps, entity references), from `*model.Session` back to `*model.Session`; gob and JSON go through plain mirror types, their conversion counted. " +
		"Run as `go test ./cbor -run '^$' -bench '^BenchmarkCodec$' -benchmem -count " + strconv.Itoa(b.cfg.runs) + " -benchtime " + b.cfg.codecBenchtime + "`."
	b.progress("codec: go test ./cbor -bench Codec, %d runs of %s each", b.cfg.runs, b.cfg.codecBenchtime)
	var out bytes.Buffer
	err := goCmd(ctx, b.root, &out, "test", "./cbor", "-run", "^$", "-bench", "^BenchmarkCodec$", "-benchmem",
		"-count", strconv.Itoa(b.cfg.runs), "-benchtime", b.cfg.codecBenchtime)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	res := parseBench(out.String())
	names := []string{"cbor", "gob", "json"}
	for _, n := range names {
		if len(res[n]["ns/op"]) == 0 {
			return fmt.Errorf("no figures for BenchmarkCodec/%s in:\n%s", n, out.String())
		}
	}
	for _, n := range names {
		sec.add(n+".time", n+": encode + decode", unitMicros, scale(res[n]["ns/op"], 1e-3))
	}
	sec.add("gob_over_cbor", "gob ÷ cbor, time", unitRatio, ratios(res["gob"]["ns/op"], res["cbor"]["ns/op"]))
	sec.add("json_over_cbor", "JSON ÷ cbor, time", unitRatio, ratios(res["json"]["ns/op"], res["cbor"]["ns/op"]))
	for _, n := range names {
		sec.add(n+".size", n+": snapshot size", unitBytes, res[n]["bytes/snapshot"])
	}
	for _, n := range names {
		sec.add(n+".alloc", n+": allocated per encode + decode", unitBytes, res[n]["B/op"])
	}
	b.progress("codec: cbor %s, gob %s, JSON %s", format(med(scale(res["cbor"]["ns/op"], 1e-3)), unitMicros),
		format(med(scale(res["gob"]["ns/op"], 1e-3)), unitMicros), format(med(scale(res["json"]["ns/op"], 1e-3)), unitMicros))
	return nil
}

// parseBench reads `go test -bench` output: for each sub-benchmark of
// BenchmarkCodec, each metric's values in the order of the runs.
func parseBench(out string) map[string]map[string][]float64 {
	res := map[string]map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkCodec/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkCodec/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		if res[name] == nil {
			res[name] = map[string][]float64{}
		}
		// f[1] is the iteration count; then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	return res
}

func scale(vals []float64, k float64) []float64 {
	out := make([]float64, len(vals))
	for i, v := range vals {
		out[i] = v * k
	}
	return out
}

func med(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	m, _, _ := summary(vals)
	return m
}

// goCmd runs the go command in the module root.
func goCmd(ctx context.Context, root string, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
