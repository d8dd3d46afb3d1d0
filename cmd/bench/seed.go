package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/demo"
	"understudy/internal/seed"
	"understudy/model"
	"understudy/model/modeltest"
)

// demoTemplates returns n demo sessions walked with demo.Answers to the
// card details page, each naming demo.MaxDrivers drivers: the largest
// sessions the demo makes short of confirming (3 running applications),
// stamped with node and epoch.
func demoTemplates(ctx context.Context, n int, node string, epoch uint64) ([]*model.Session, error) {
	eng := model.NewEngine(demo.Registry(), demo.Resolver())
	now := time.Now().UTC()
	var out []*model.Session
	for c := range n {
		run, err := eng.Start(ctx, model.Begin{App: demo.AppName, Session: randomID(), Now: now, Node: node, Epoch: epoch})
		if err != nil {
			return nil, err
		}
		driver := 0
		for range 50 {
			pg, err := eng.Page(ctx, run)
			if err != nil {
				return nil, err
			}
			if pg.Finished || pg.Step == demo.StepCard {
				break
			}
			vals := demo.Answers(pg.Step, c)
			if pg.Step == demo.StepDriver {
				vals = demo.DriverAnswers(c, driver, driver < demo.MaxDrivers-1)
				driver++
			}
			run, err = eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: vals, Now: now, Node: node, Epoch: epoch})
			if err != nil {
				return nil, fmt.Errorf("demo template %d at %s: %w", c, pg.Step, err)
			}
		}
		out = append(out, run.Session())
	}
	return out, nil
}

// catchUpTemplates returns the sessions of subscriber's catch-up figures:
// a modeltest quote with 12 drivers stopped at three places (about 4 KiB).
func catchUpTemplates(ctx context.Context) ([]*model.Session, error) {
	eng := modeltest.Engine()
	var out []*model.Session
	for _, stop := range []string{"payment/method", "confirm", ""} {
		run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(0), 12, stop)
		if err != nil {
			return nil, err
		}
		out = append(out, run.Session())
	}
	return out, nil
}

func randomID() model.SessionID {
	var b [16]byte
	rand.Read(b[:])
	return model.NewSessionID(b)
}

// seededServer starts an embedded NATS server on storeDir, fsyncing in
// the background (seeding is not what is measured), and publishes n
// sessions to the session stream, copies of the templates under fresh
// ids, with the headers a node's publisher writes. It returns the running
// server and the average snapshot size.
func (b *bench) seededServer(ctx context.Context, storeDir string, templates []*model.Session, n int) (*broker.Embedded, float64, error) {
	emb := broker.NewEmbedded(broker.EmbeddedConfig{ServerName: "bench-seed", Port: broker.RandomPort, StoreDir: storeDir,
		SyncInterval: 2 * time.Second, JetStreamMaxStore: maxStore, Logger: quiet})
	if err := emb.Start(ctx); err != nil {
		return nil, 0, err
	}
	avg, err := b.seed(ctx, emb.ClientURL(), templates, n)
	if err != nil {
		emb.Close(context.Background())
		return nil, 0, err
	}
	return emb, avg, nil
}

func (b *bench) seed(ctx context.Context, url string, templates []*model.Session, n int) (float64, error) {
	nc, err := broker.Connect(ctx, broker.Config{URL: url, Name: "bench-seed", Logger: quiet})
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(seed.MaxPending))
	if err != nil {
		return 0, err
	}
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Logger: quiet}); err != nil {
		return 0, err
	}
	start := time.Now()
	bytes, err := seed.Sessions(ctx, js, broker.Subjects{}, templates, n, func(int) model.SessionID { return randomID() },
		func(done int) { b.progress("  seeding: %d of %d sessions", done, n) })
	if err != nil {
		return 0, err
	}
	avg := float64(bytes) / float64(max(n, 1))
	b.progress("  seeded %s sessions of %.0f bytes on average in %s", group3(float64(n), 0), avg, time.Since(start).Round(time.Millisecond))
	return avg, nil
}
