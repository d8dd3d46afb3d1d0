package broker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"understudy/broker"
	"understudy/broker/brokertest"
)

// TestConnectNKey: a server that knows a user only by its nkey admits a
// client that signs with the seed file (-nats-nkey), and refuses one with
// another seed, with an error that names authorization and not the seed.
func TestConnectNKey(t *testing.T) {
	dir := t.TempDir()
	user, seedFile := newNKeyUser(t, dir, "node")
	conf := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(conf, []byte("authorization { users = [ { nkey: "+user+" } ] }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := brokertest.Start(t, brokertest.WithConfigFile(conf))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := broker.Config{URL: srv.URL(), Name: "nkey-test", NKeySeedFile: seedFile, Logger: brokertest.Logger(t)}
	nc, err := broker.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect with the nkey seed: %v", err)
	}
	if err := nc.Publish("x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	_, strangerSeed := newNKeyUser(t, dir, "stranger")
	cfg.NKeySeedFile = strangerSeed
	nc, err = broker.Connect(ctx, cfg)
	if err == nil {
		nc.Close()
		t.Fatal("a client with an unknown nkey was admitted")
	}
	seed, _ := os.ReadFile(strangerSeed)
	if !errors.Is(err, broker.ErrNoConnection) || !strings.Contains(strings.ToLower(err.Error()), "authorization") ||
		strings.Contains(err.Error(), strings.TrimSpace(string(seed))) {
		t.Errorf("error = %v; want ErrNoConnection naming authorization, without the seed", err)
	}
}

// newNKeyUser makes a user nkey, writes its seed to a file in dir, and
// returns the public key and the file.
func newNKeyUser(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".nk")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, file
}
