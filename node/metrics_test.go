package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"understudy/broker/brokertest"
	"understudy/cbor"
	"understudy/node"
	"understudy/snapshot"
)

// scrape returns the node's /metrics.
func scrape(t *testing.T, r *running) string {
	t.Helper()
	resp, err := http.Get(r.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricLine reports whether the scrape has the line "name value".
func metricLine(text, name, value string) bool {
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == name+" "+value {
			return true
		}
	}
	return false
}

// grepLines returns the lines of text that contain what.
func grepLines(text, what string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.Contains(line, what) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestMetrics: labelled counters are there from the start at 0; the
// connection, catch-up and lag gauges say how the node stands; a session
// that cannot be restored is counted by its reason and among those
// quarantined now; a lost NATS connection shows.
func TestMetrics(t *testing.T) {
	srv := brokertest.Start(t)
	a := start(t, srv, "a", node.RolePrimary)
	b := start(t, srv, "b", node.RoleBackup)
	text := scrape(t, b)
	for _, want := range [][2]string{
		{`understudy_interactions_total{result="cannot_move"}`, "0"},
		{`understudy_interactions_total{result="stale"}`, "0"},
		{`understudy_unavailable_total{reason="busy"}`, "0"},
		{`understudy_sessions_ended_total{why="erased"}`, "0"},
		{`understudy_quarantined_total{reason="decode"}`, "0"},
		{`understudy_lease_renewals_total{outcome="failed"}`, "0"},
		{`understudy_nats_connected{connection="data"}`, "1"},
		{`understudy_nats_connected{connection="lease"}`, "1"},
		{`understudy_caught_up`, "1"},
		{`understudy_replication_lag_seconds`, "0"},
		{`understudy_sessions_quarantined`, "0"},
	} {
		if !metricLine(text, want[0], want[1]) {
			t.Errorf("backup's metrics lack %s %s", want[0], want[1])
		}
	}

	// A session whose newest snapshot is cut short: its envelope no longer
	// says what its headers say.
	c := newClient(t, a.URL)
	c.get()
	c.answer(1, 0)
	st := latest(t, srv, c)
	bad := append([]byte{}, st.Data[:len(st.Data)-10]...)
	publishRaw(t, srv.JetStream(t), snapshot.Meta{Session: st.Session, Epoch: st.Epoch, Seq: st.Seq + 1, Node: st.Node,
		Format: cbor.FormatVersion, Prev: st.StreamSeq}, bad)
	brokertest.WaitFor(t, 10*time.Second, "the backup to count the quarantine", func() bool {
		text := scrape(t, b)

		return metricLine(text, `understudy_quarantined_total{reason="bad_message"}`, "1") && metricLine(text, "understudy_sessions_quarantined", "1")
	})

	// NATS goes away: the connection gauges say so, and come back.
	srv.Stop()
	brokertest.WaitFor(t, 10*time.Second, "the data connection to show as down", func() bool {
		return metricLine(scrape(t, b), `understudy_nats_connected{connection="data"}`, "0")
	})
	srv.Start()
	brokertest.WaitFor(t, 30*time.Second, "the connections to show as up", func() bool {
		text := scrape(t, b)
		return metricLine(text, `understudy_nats_connected{connection="data"}`, "1") && metricLine(text, `understudy_nats_connected{connection="lease"}`, "1")
	})
}
