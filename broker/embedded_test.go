package broker_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/broker/brokertest"
)

func TestEmbeddedConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  broker.EmbeddedConfig
		ok   bool
	}{
		{"minimal", broker.EmbeddedConfig{StoreDir: dir}, true},
		{"random ports", broker.EmbeddedConfig{StoreDir: dir, Port: -1, MonitorPort: -1}, true},
		{"cluster", broker.EmbeddedConfig{StoreDir: dir, ServerName: "a", ClusterName: "c", ClusterPort: 6222, Routes: []string{"nats://127.0.0.1:6222"}}, true},
		{"no store", broker.EmbeddedConfig{}, false},
		{"bad port", broker.EmbeddedConfig{StoreDir: dir, Port: 70000}, false},
		{"bad host", broker.EmbeddedConfig{StoreDir: dir, Host: "example.com"}, false},
		{"negative sync", broker.EmbeddedConfig{StoreDir: dir, SyncInterval: -time.Second}, false},
		{"password only", broker.EmbeddedConfig{StoreDir: dir, Password: "p"}, false},
		{"user and token", broker.EmbeddedConfig{StoreDir: dir, User: "u", Token: "t"}, false},
		{"tls without key", broker.EmbeddedConfig{StoreDir: dir, TLS: broker.ServerTLS{CertFile: "c"}}, false},
		{"cluster without name", broker.EmbeddedConfig{StoreDir: dir, ClusterName: "c", ClusterPort: 6222}, false},
		{"cluster without port", broker.EmbeddedConfig{StoreDir: dir, ServerName: "a", ClusterName: "c"}, false},
		{"routes without cluster", broker.EmbeddedConfig{StoreDir: dir, Routes: []string{"nats://127.0.0.1:6222"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, broker.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestEmbeddedDefaults(t *testing.T) {
	cfg := broker.NewEmbedded(broker.EmbeddedConfig{StoreDir: "/x"}).Config()
	if cfg.Host != "127.0.0.1" || cfg.Port != 4222 || cfg.MonitorPort != 0 || cfg.SyncInterval != 0 ||
		cfg.JetStreamMaxMemory != broker.DefaultJetStreamMaxMemory || cfg.JetStreamMaxStore != broker.DefaultJetStreamMaxStore {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// TestEmbeddedSyncAlways checks that an embedded server fsyncs every write
// unless told otherwise, and that the limits are the configured ones.
func TestEmbeddedSyncAlways(t *testing.T) {
	srv := brokertest.Start(t)
	opts := srv.Embedded().Server().JetStreamConfig()
	if opts == nil || !opts.SyncAlways || opts.MaxStore != broker.DefaultJetStreamMaxStore || opts.MaxMemory != broker.DefaultJetStreamMaxMemory {
		t.Fatalf("jetstream config = %+v; want sync always and the default limits", opts)
	}
	if !strings.HasPrefix(opts.StoreDir, srv.Config().StoreDir) {
		t.Errorf("store dir %s, want under %s", opts.StoreDir, srv.Config().StoreDir)
	}

	periodic := brokertest.Start(t, brokertest.WithSyncInterval(time.Second))
	if opts := periodic.Embedded().Server().JetStreamConfig(); opts.SyncAlways || opts.SyncInterval != time.Second {
		t.Fatalf("jetstream config = %+v; want a 1s sync interval", opts)
	}
}

// TestEmbeddedRestartKeepsMessages: what JetStream acknowledged is on disk
// and comes back after a restart on the same store.
func TestEmbeddedRestartKeepsMessages(t *testing.T) {
	srv := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := srv.JetStream(t)
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var subj broker.Subjects
	subject, err := subj.SessionSubject("s1")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, subject, []byte("snapshot-1"))
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()

	srv.Restart()
	if srv.URL() != url {
		t.Fatalf("restarted at %s, want %s", srv.URL(), url)
	}
	js = srv.JetStream(t)
	stream, err = js.Stream(ctx, stream.CachedInfo().Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "snapshot-1" || msg.Sequence != ack.Sequence {
		t.Fatalf("after restart: %q seq %d, want %q seq %d", msg.Data, msg.Sequence, "snapshot-1", ack.Sequence)
	}
}

// TestEmbeddedClientSurvivesRestart: a client made with Connect comes back
// by itself after the broker restarts, and JetStream works again.
func TestEmbeddedClientSurvivesRestart(t *testing.T) {
	srv := brokertest.Start(t)
	nc := srv.Connect(t, brokertest.NoReconnectBuffer())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: brokertest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	brokertest.WaitFor(t, 5*time.Second, "client sees the broker gone", func() bool { return !nc.IsConnected() })
	if _, err := js.Publish(ctx, "understudy.sess.s1", []byte("x")); err == nil {
		t.Fatal("publish with the broker stopped succeeded")
	}
	srv.Start()
	brokertest.WaitFor(t, 10*time.Second, "client reconnected", nc.IsConnected)
	if _, err := js.Publish(ctx, "understudy.sess.s1", []byte("y")); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
}

func TestEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	emb := broker.NewEmbedded(broker.EmbeddedConfig{Port: port, StoreDir: t.TempDir(), Logger: brokertest.Logger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = emb.Start(ctx)
	if err == nil {
		_ = emb.Close(ctx)
		t.Fatal("Start on a port in use succeeded")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, broker.ErrServerNotReady) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error = %v; want ErrServerNotReady naming port %d", err, port)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Start took %s to fail", took)
	}
}

func TestEmbeddedStartTwice(t *testing.T) {
	emb := broker.NewEmbedded(broker.EmbeddedConfig{Port: -1, StoreDir: t.TempDir(), Logger: brokertest.Logger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := emb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer emb.Close(ctx)
	if err := emb.Start(ctx); !errors.Is(err, broker.ErrAlreadyStarted) {
		t.Fatalf("second Start = %v, want ErrAlreadyStarted", err)
	}
	if err := emb.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if emb.ClientURL() != "" || emb.Server() != nil {
		t.Fatal("closed server still has a URL")
	}
	if err := emb.Close(ctx); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}
