package brokertest

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echo is a TCP server that writes back every line it reads.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// TestProxyDelay: a delayed proxy still forwards every byte in order, and
// a round trip takes at least both delays (a lower bound a sleep
// guarantees, not a timing threshold).
func TestProxyDelay(t *testing.T) {
	p := NewProxy(t, echo(t))
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(line string) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != line+"\n" {
			t.Fatalf("echoed %q, sent %q", got, line)
		}
		return time.Since(start)
	}
	roundTrip("before")
	p.Delay(30*time.Millisecond, 20*time.Millisecond)
	for i, line := range []string{"one", "two", "three"} {
		if d := roundTrip(line); d < 50*time.Millisecond {
			t.Errorf("round trip %d took %v through a proxy delaying 30 ms + 20 ms", i, d)
		}
	}
	p.Delay(0, 0)
	roundTrip("after")
}
