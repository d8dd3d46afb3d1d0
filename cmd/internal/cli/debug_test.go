package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestDebug: no listener unless asked for; when asked, the profiles on
// their own address, stopped with the process.
func TestDebug(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fs := NewFlagSet("t", "", io.Discard)
	debug := Debug(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if debug(log) != nil {
		t.Fatal("a debug listener without -debug-listen")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	fs = NewFlagSet("t", "", io.Discard)
	debug = Debug(fs)
	if err := fs.Parse([]string{"-debug-listen", addr}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- debug(log)(ctx) }()
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/debug/pprof/cmdline"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("profiles: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped with %v", err)
	}
}
