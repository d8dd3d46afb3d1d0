// Command redisnode is the benchmarks' baseline: the demo application
// served as a team would serve it without understudy, with every session
// kept in Redis, as Spring Session or a Redis-backed Go session store
// keeps it.
//
// On every request it reads the session from Redis (GET), decodes and
// rebuilds it by the node's own path (snapshot.Restore); after every
// interaction it encodes it (cbor.Marshal) and writes it back (SET, with a
// time to live) before it answers. It runs the same application
// (demo.Registry), the same engine, the same entity database and the same
// JSON twin of every page as understudy's node, behind the same gateway.
// It renders only the JSON twin (the benchmark's client reads nothing
// else), and, like the usual session stores, takes no lock: one browser
// sends one request at a time.
//
// For the gateway to route to it, it joins the replication group as a
// group.Member and claims it: it holds and renews the lease, so the
// gateway sees it as the owner, and publishes no snapshot. Durability is
// Redis's: run redis-server with appendfsync always or everysec.
//
// Its flags are those internal/deploy gives a node (-node, -listen, -nats,
// -db, -secret-file), and -redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"

	"understudy/broker"
	"understudy/demo"
	"understudy/entity"
	"understudy/group"
	"understudy/model"
)

func main() {
	if err := runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "redisnode:", err)
		os.Exit(1)
	}
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redisnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("node", "redis-node", "this node's name in the group")
	listen := fs.String("listen", "127.0.0.1:8081", "HTTP listen address")
	natsURL := fs.String("nats", broker.DefaultURL, "NATS server URL (for the group's lease only)")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis address (host:port)")
	pool := fs.Int("redis-pool", 256, "Redis connections at most")
	ttl := fs.Duration("ttl", 30*time.Minute, "a session's time to live in Redis, renewed by every interaction")
	db := fs.String("db", "understudy-data/entities.db", "entity database (SQLite file or postgres:// DSN)")
	secretFile := fs.String("secret-file", "", "file with the secret that signs CSRF tokens")
	prefix := fs.String("prefix", broker.DefaultPrefix, "subject and stream prefix")
	groupName := fs.String("group", group.DefaultGroup, "replication group whose owner it becomes")
	lease := fs.Duration("lease", group.DefaultLease, "the lease it holds")
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: lvl})).With("node", *name)
	subjects, err := broker.NewSubjects(*prefix)
	if err != nil {
		return err
	}
	var secret []byte
	if *secretFile != "" {
		if secret, err = os.ReadFile(*secretFile); err != nil {
			return fmt.Errorf("-secret-file: %w", err)
		}
	}
	if !strings.Contains(*db, "://") {
		if i := strings.LastIndexAny(*db, `/\`); i > 0 {
			os.MkdirAll((*db)[:i], 0o755)
		}
	}
	store, err := entity.Open(ctx, entity.Config{DSN: *db, Seed: demo.Entities()})
	if err != nil {
		return err
	}
	defer store.Close()

	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: *pool, MinIdleConns: 8})
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis %s: %w", *redisAddr, err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	address := "http://" + ln.Addr().String()

	nc, err := broker.Connect(ctx, broker.Config{URL: *natsURL, Name: *name, NoReconnectBuffer: true, Logger: log})
	if err != nil {
		return err
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Subjects: subjects, Logger: log})
	if err != nil {
		return err
	}
	kv, err := broker.EnsureBucket(ctx, js, broker.BucketConfig{Subjects: subjects, Logger: log})
	if err != nil {
		return err
	}
	member := group.New(nc, kv, stream, group.Config{Subjects: subjects, Group: *groupName, Node: *name, Address: address, Lease: *lease, Logger: log}, group.Hooks{})
	if err := member.Start(ctx); err != nil {
		return err
	}
	defer member.Close(context.Background())

	reg := demo.Registry()
	srv := &server{
		node: *name, app: reg.Apps()[0].Name(), cookie: "understudy_session",
		eng: model.NewEngine(reg, store), rdb: rdb, secret: secret, ttl: *ttl,
		epoch: member.Epoch, ready: func() bool { return member.Role() == group.Primary }, log: log,
	}
	httpSrv := &http.Server{Handler: srv.handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	var g run.Group
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g.Add(run.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	g.Add(func() error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		httpSrv.Shutdown(sctx)
	})
	g.Add(func() error {
		// Serve first, then claim: the gateway routes here once it sees
		// the claim.
		if err := member.Claim(ctx); err != nil {
			return err
		}
		log.Info("serving the demo application with sessions in Redis", "address", address, "redis", *redisAddr, "epoch", member.Epoch())
		<-ctx.Done()
		return nil
	}, func(error) {
		stop()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if member.Role() == group.Primary {
			member.Release(rctx)
		}
	})
	err = g.Run()
	if errors.Is(err, run.ErrSignal) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
