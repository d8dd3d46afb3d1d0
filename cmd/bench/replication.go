package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"understudy/bench/redisserver"
	"understudy/broker"
	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
	"understudy/publisher"
	"understudy/snapshot"
)

// durability is one of the two durabilities compared: fsync on every
// write, or periodic.
type durability struct {
	id    string // "always", "periodic"
	title string
	sync  time.Duration     // JetStream's SyncInterval: 0 = every write
	redis redisserver.Fsync // Redis's appendfsync
}

func (b *bench) durabilities() []durability {
	return []durability{
		{"always", "fsync on every write (JetStream's default; Redis appendfsync always)", 0, redisserver.Always},
		{"periodic", fmt.Sprintf("periodic fsync (JetStream every %s; Redis appendfsync everysec)", b.cfg.syncInterval), b.cfg.syncInterval, redisserver.EverySec},
	}
}

// quiet is a logger for the servers and clients the benchmark runs in
// process: errors only.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// replicationSessions returns n sessions like publisher's benchmark's: a
// modeltest quote with 12 drivers waiting at payment/card/details (about
// 4 KiB encoded), each under its own id from base.
func replicationSessions(ctx context.Context, base, n int) ([]*model.Session, error) {
	run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(1), 12, "payment/card/details")
	if err != nil {
		return nil, err
	}
	out := make([]*model.Session, n)
	for i := range out {
		s := run.Restamp("n1", 1).Session()
		s.ID = modeltest.SessionID(base + i)
		out[i] = s
	}
	return out, nil
}

// replication measures one interaction's replication: understudy's
// encode + publish + ack against a plain JetStream publish of the same
// bytes (the floor) and a Redis SET of them, at each durability.
func (b *bench) replication(ctx context.Context) error {
	sec := b.rep.section("replication", "1. Replication cost per interaction")
	raw, err := replicationSessions(ctx, 1000, 64)
	if err != nil {
		return err
	}
	mine, err := replicationSessions(ctx, 2000, 64)
	if err != nil {
		return err
	}
	sealed, err := replicationSessions(ctx, 3000, 64)
	if err != nil {
		return err
	}
	data, err := cbor.Marshal(raw[0])
	if err != nil {
		return err
	}
	sec.Note = fmt.Sprintf("One snapshot of %s bytes (publisher's benchmark session: a quote with 12 drivers at payment/card/details), %s operations per variant per run, one at a time. "+
		"JetStream: the embedded server in this process, a client over loopback TCP; Redis: redis-server over loopback TCP, go-redis. "+
		"*JetStream publish* is a plain sync publish of the encoded bytes (the floor); *understudy* is publisher.Publish: encoding, Msg-Id hash, headers, expected sequence, ack; "+
		"*understudy, sealed* is the same with the payload sealed (AES-256-GCM, -snapshot-key); "+
		"*Redis SET* stores the same bytes, *Redis encode + SET* encodes the session first, as understudy does.", group3(float64(len(data)), 0), group3(float64(b.cfg.ops), 0))

	for _, d := range b.durabilities() {
		if err := b.replicationAt(ctx, sec, d, raw, mine, sealed, data); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) replicationAt(ctx context.Context, sec *Section, d durability, raw, mine, sealed []*model.Session, data []byte) error {
	b.progress("replication, %s: starting the embedded NATS server and redis-server", d.id)
	emb := broker.NewEmbedded(broker.EmbeddedConfig{ServerName: "bench-" + d.id, Port: broker.RandomPort,
		StoreDir: filepath.Join(b.dir, "replication", "nats-"+d.id), SyncInterval: d.sync, Logger: quiet})
	if err := emb.Start(ctx); err != nil {
		return err
	}
	defer emb.Close(context.Background())
	nc, err := broker.Connect(ctx, broker.Config{URL: emb.ClientURL(), Name: "bench", NoReconnectBuffer: true, Logger: quiet})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: quiet})
	if err != nil {
		return err
	}
	pub := publisher.New(js, stream, publisher.Config{Node: "n1", Logger: quiet})
	keys, err := benchKeyring()
	if err != nil {
		return err
	}
	sealPub := publisher.New(js, stream, publisher.Config{Node: "n1", Sealer: keys, Logger: quiet})
	subjects := make([]string, len(raw))
	for i, s := range raw {
		subjects[i], _ = broker.Subjects{}.SessionSubject(string(s.ID))
	}

	var rdb *redis.Client
	if b.redis == "" {
		rs, err := redisserver.Start(ctx, filepath.Join(b.dir, "replication", "redis-"+d.id), d.redis)
		if err != nil {
			return err
		}
		defer rs.Close()
		rdb = redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 4})
		defer rdb.Close()
	}
	enc := cbor.NewEncoder()

	type variant struct {
		id, name string
		redis    bool
		op       func(i int) error
	}
	variants := []variant{
		{"jetstream", "JetStream publish (the floor)", false, func(i int) error {
			_, err := js.Publish(ctx, subjects[i%len(subjects)], data)
			return err
		}},
		{"understudy", "understudy: encode + publish + ack", false, func(i int) error {
			s := mine[i%len(mine)]
			s.Seq++
			_, err := pub.Publish(ctx, s)
			return err
		}},
		{"understudy_sealed", "understudy, sealed: encode + seal + publish + ack", false, func(i int) error {
			s := sealed[i%len(sealed)]
			s.Seq++
			_, err := sealPub.Publish(ctx, s)
			return err
		}},
		{"redis", "Redis SET", true, func(i int) error {
			return rdb.Set(ctx, "bench:"+strconv.Itoa(i%len(raw)), data, 30*time.Minute).Err()
		}},
		{"redis_encode", "Redis encode + SET", true, func(i int) error {
			s := mine[i%len(mine)]
			buf, err := enc.Encode(s)
			if err != nil {
				return err
			}
			return rdb.Set(ctx, "bench:"+string(s.ID), buf, 30*time.Minute).Err()
		}},
	}
	p50 := map[string][]float64{}
	p99 := map[string][]float64{}
	// Warm up connections, caches and the store's first blocks.
	for _, v := range variants {
		if v.redis && rdb == nil {
			continue
		}
		for i := range min(200, b.cfg.ops) {
			if err := v.op(i); err != nil {
				return fmt.Errorf("%s: %w", v.id, err)
			}
		}
	}
	for r := range b.cfg.runs {
		// Rotate the order, so no variant always runs first.
		for k := range variants {
			v := variants[(k+r)%len(variants)]
			if v.redis && rdb == nil {
				continue
			}
			ds := make([]time.Duration, b.cfg.ops)
			for i := range ds {
				t0 := time.Now()
				if err := v.op(i); err != nil {
					return fmt.Errorf("%s: %w", v.id, err)
				}
				ds[i] = time.Since(t0)
			}
			p50[v.id] = append(p50[v.id], micros(percentile(ds, 50)))
			p99[v.id] = append(p99[v.id], micros(percentile(ds, 99)))
		}
		b.progress("replication, %s, run %d/%d: p50 JetStream %s, understudy %s, Redis SET %s", d.id, r+1, b.cfg.runs,
			format(last(p50["jetstream"]), unitMicros), format(last(p50["understudy"]), unitMicros), format(last(p50["redis"]), unitMicros))
	}
	for _, v := range variants {
		for _, p := range []struct {
			id   string
			vals map[string][]float64
		}{{"p50", p50}, {"p99", p99}} {
			id := d.id + "." + v.id + "." + p.id
			name := d.id + ": " + v.name + ", " + p.id
			if v.redis && rdb == nil {
				sec.unavailable(id, name, unitMicros, b.redis)
				continue
			}
			sec.add(id, name, unitMicros, p.vals[v.id])
		}
	}
	sec.add(d.id+".understudy_over_jetstream.p50", d.id+": understudy ÷ JetStream floor, p50", unitRatio, ratios(p50["understudy"], p50["jetstream"]))
	sec.add(d.id+".understudy_over_jetstream.p99", d.id+": understudy ÷ JetStream floor, p99", unitRatio, ratios(p99["understudy"], p99["jetstream"]))
	sec.add(d.id+".sealed_over_understudy.p50", d.id+": understudy sealed ÷ understudy, p50", unitRatio, ratios(p50["understudy_sealed"], p50["understudy"]))
	sec.add(d.id+".sealed_over_understudy.p99", d.id+": understudy sealed ÷ understudy, p99", unitRatio, ratios(p99["understudy_sealed"], p99["understudy"]))
	if rdb == nil {
		sec.unavailable(d.id+".understudy_over_redis.p50", d.id+": understudy ÷ Redis encode + SET, p50", unitRatio, b.redis)
	} else {
		sec.add(d.id+".understudy_over_redis.p50", d.id+": understudy ÷ Redis encode + SET, p50", unitRatio, ratios(p50["understudy"], p50["redis_encode"]))
	}
	return nil
}

// benchKeyring is a keyring with one fresh random key, as a node with
// -snapshot-key seals.
func benchKeyring() (*snapshot.Keyring, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return snapshot.NewKeyring(map[string][]byte{"bench": key}, "bench")
}

func last(vals []float64) float64 {
	if len(vals) == 0 {
		return math.NaN()
	}
	return vals[len(vals)-1]
}
