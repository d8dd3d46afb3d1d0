package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"understudy/broker"
	"understudy/broker/brokertest"
)

func TestConnectUserPassword(t *testing.T) {
	srv := brokertest.Start(t, brokertest.WithUser("node", "s3cret-pw"))
	nc := srv.Connect(t)
	if err := nc.Publish("x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestConnectWrongPassword(t *testing.T) {
	srv := brokertest.Start(t, brokertest.WithUser("node", "s3cret-pw"))
	cfg := srv.ClientConfig(t)
	cfg.Password = "wrong-pw"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	nc, err := broker.Connect(ctx, cfg)
	if err == nil {
		nc.Close()
		t.Fatal("Connect with a wrong password succeeded")
	}
	// The client gives up on the same authorization error twice, so the
	// error comes at once, not at the deadline.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Connect took %s to fail", took)
	}
	t.Logf("error: %v", err)
	msg := err.Error()
	if !errors.Is(err, broker.ErrNoConnection) || !strings.Contains(strings.ToLower(msg), "authorization") || !strings.Contains(msg, srv.URL()) {
		t.Errorf("error = %v; want ErrNoConnection naming authorization and %s", err, srv.URL())
	}
	if strings.Contains(msg, "wrong-pw") || strings.Contains(msg, "s3cret-pw") {
		t.Errorf("error leaks a password: %v", err)
	}
}

func TestConnectPasswordInURLNotLeaked(t *testing.T) {
	srv := brokertest.Start(t, brokertest.WithUser("node", "s3cret-pw"))
	cfg := srv.ClientConfig(t)
	cfg.User, cfg.Password = "", ""
	cfg.URL = strings.Replace(srv.URL(), "nats://", "nats://node:leaky-pw@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, cfg)
	if err == nil {
		nc.Close()
		t.Fatal("Connect with a wrong password in the URL succeeded")
	}
	if strings.Contains(err.Error(), "leaky-pw") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestConnectToken(t *testing.T) {
	srv := brokertest.Start(t, brokertest.WithToken("tok-123"))
	nc := srv.Connect(t)
	if _, err := nc.Request("nobody.listens", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request = %v, want no responders (a working connection)", err)
	}

	cfg := srv.ClientConfig(t)
	cfg.Token = "tok-456"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if nc, err := broker.Connect(ctx, cfg); err == nil {
		nc.Close()
		t.Fatal("Connect with a wrong token succeeded")
	} else if strings.Contains(err.Error(), "tok-") {
		t.Errorf("error leaks a token: %v", err)
	}
}

func TestConnectRetriesUntilServerStarts(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var reconnects atomic.Int32
	cfg := broker.Config{
		URL:              url,
		ReconnectWait:    10 * time.Millisecond,
		MaxReconnectWait: 100 * time.Millisecond,
		Logger:           brokertest.Logger(t),
		OnReconnect:      func() { reconnects.Add(1) },
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		nc, err := broker.Connect(ctx, cfg)
		done <- result{nc, err}
	}()

	// The client is retrying against nothing; now the broker comes up.
	select {
	case r := <-done:
		t.Fatalf("Connect returned before the server started: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}
	emb := broker.NewEmbedded(broker.EmbeddedConfig{Port: port, StoreDir: t.TempDir(), Logger: brokertest.Logger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := emb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close(context.Background()) })

	r := <-done
	if r.err != nil {
		t.Fatalf("Connect: %v", r.err)
	}
	defer r.nc.Close()
	if r.nc.ConnectedUrl() != url {
		t.Errorf("connected to %s, want %s", r.nc.ConnectedUrl(), url)
	}
	// The first connection is not a reconnect.
	if n := reconnects.Load(); n != 0 {
		t.Errorf("OnReconnect called %d times", n)
	}
}

func TestConnectGivesUpAtDeadline(t *testing.T) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	nc, err := broker.Connect(ctx, broker.Config{URL: url, ReconnectWait: 10 * time.Millisecond, Logger: brokertest.Logger(t)})
	if err == nil {
		nc.Close()
		t.Fatal("Connect to nothing succeeded")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, broker.ErrNoConnection) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), url) {
		t.Fatalf("error = %v; want ErrNoConnection, deadline exceeded, naming %s", err, url)
	}
}

func TestConnectRejectsInvalidConfig(t *testing.T) {
	_, err := broker.Connect(context.Background(), broker.Config{Password: "p"})
	if !errors.Is(err, broker.ErrInvalidConfig) {
		t.Fatalf("Connect = %v, want ErrInvalidConfig", err)
	}
}

// TestNoReconnectBuffer checks the property nodes rely on: a publish made
// while disconnected fails at once and is never delivered later.
func TestNoReconnectBuffer(t *testing.T) {
	srv := brokertest.Start(t)
	disconnected := make(chan struct{}, 1)
	reconnected := make(chan struct{}, 1)
	nc := srv.Connect(t, brokertest.NoReconnectBuffer(), func(c *broker.Config) {
		c.OnDisconnect = func(error) { disconnected <- struct{}{} }
		c.OnReconnect = func() { reconnected <- struct{}{} }
	})
	watcher := srv.Connect(t)
	sub, err := watcher.SubscribeSync("lost.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	waitChan(t, disconnected, "disconnect")
	if err := nc.Publish("lost.1", []byte("x")); err == nil {
		t.Fatal("publish while disconnected succeeded; want an error at once")
	}

	srv.Start()
	waitChan(t, reconnected, "reconnect")
	brokertest.WaitFor(t, 10*time.Second, "watcher reconnected", watcher.IsConnected)
	// Round trips on both connections: anything buffered would have
	// arrived by now.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	if msg, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("publish made while disconnected was delivered: %s", msg.Subject)
	}
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
