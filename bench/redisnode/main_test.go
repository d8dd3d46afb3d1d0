package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"understudy/bench/redisserver"
	"understudy/bench/shopper"
	"understudy/broker/brokertest"
	"understudy/internal/deploy"
	"understudy/model"
)

// needRedis starts a redis-server for the test: without one, the test
// fails in CI and is skipped elsewhere.
func needRedis(t *testing.T) *redisserver.Server {
	t.Helper()
	if err := redisserver.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI must run this test)", err)
		}
		t.Skip(err)
	}
	rs, err := redisserver.Start(context.Background(), t.TempDir(), redisserver.Always)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs
}

// start runs the baseline in this process until the test ends or stop is
// called, and returns its URL.
func start(t *testing.T, natsURL, redisAddr, db string) (url string, stop func()) {
	t.Helper()
	port, err := deploy.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- runMain(ctx, []string{"-node", "redis-a", "-listen", "127.0.0.1:" + strconv.Itoa(port), "-nats", natsURL,
			"-redis", redisAddr, "-db", db, "-log-level", "warn"}, &logs, &logs)
	}()
	url = "http://127.0.0.1:" + strconv.Itoa(port)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("redisnode: %v\n%s", err, logs.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("redisnode did not stop")
		}
	}
	t.Cleanup(stop)
	// Ready once it holds the group.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := statusGet(url + "/understudy/status")
		if err == nil && resp {
			return url, stop
		}
		select {
		case err := <-done:
			t.Fatalf("redisnode exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redisnode not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling its status
	}
}

// TestQuoteThroughRedis walks quotes to the end through the baseline; the
// process is restarted half way, and the sessions carry on from Redis.
func TestQuoteThroughRedis(t *testing.T) {
	rs := needRedis(t)
	srv := brokertest.Start(t)
	db := filepath.Join(t.TempDir(), "entities.db")
	url, stop := start(t, srv.URL(), rs.Addr, db)
	ctx := context.Background()

	shoppers := make([]*shopper.Shopper, 3)
	for i := range shoppers {
		shoppers[i] = shopper.New(i, url, nil)
		if err := shoppers[i].Start(ctx); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := shoppers[i].Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Nothing about a session lives in the process: a new one carries on.
	stop()
	url2, _ := start(t, srv.URL(), rs.Addr, db)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	for i, s := range shoppers {
		moved := s.At(url2) // same cookies, same page
		id := model.SessionID(s.Page().Session)
		n := 0
		for !moved.Finished() {
			a, err := moved.Step(ctx)
			if err != nil {
				t.Fatalf("shopper %d after the restart: %v", i, err)
			}
			if a.Node != "redis-a" {
				t.Errorf("answered by %q", a.Node)
			}
			n++
		}
		if n < 3 {
			t.Errorf("shopper %d finished after %d more interactions", i, n)
		}
		if _, err := rdb.Get(ctx, KeyPrefix+string(id)).Bytes(); err != nil {
			t.Errorf("session %s not in Redis: %v", id, err)
		}
	}
	if _, err := rdb.Get(ctx, KeyPrefix+"nosuchsession").Bytes(); !errors.Is(err, redis.Nil) {
		t.Errorf("unknown key: %v", err)
	}
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

func statusGet(url string) (bool, error) {
	resp, err := statusClient.Get(url)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	return resp.StatusCode == 200, nil
}
