package entity_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"understudy/entity"
	"understudy/model"
)

// postgresEnv names the PostgreSQL the tests use; scripts/test starts a
// throwaway one and sets it.
const postgresEnv = "UNDERSTUDY_TEST_POSTGRES"

// backend opens Stores on one database for a test: a SQLite file in the
// test's temp dir, or a table of its own in the test PostgreSQL.
type backend struct {
	name string
	cfg  func(t *testing.T) entity.Config
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) entity.Config {
			return entity.Config{DSN: filepath.Join(t.TempDir(), "entities.db")}
		}},
		{"postgres", func(t *testing.T) entity.Config {
			return entity.Config{DSN: postgresDSN(t), Table: testTable(t)}
		}},
	}
}

// postgresDSN returns the test PostgreSQL's DSN. A missing one fails the
// test in CI, where scripts/test must have started one, and skips it
// elsewhere.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn != "" {
		return dsn
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: in CI, scripts/test starts a PostgreSQL and sets it", postgresEnv)
	}
	t.Skipf("%s is not set: run scripts/test, which starts a throwaway PostgreSQL, "+
		"or point it at one: %s=postgres://postgres@127.0.0.1:5432/understudy?sslmode=disable", postgresEnv, postgresEnv)
	return ""
}

// testTable returns a fresh table name and drops the table when the test
// ends, so tests share a PostgreSQL database without seeing each other.
func testTable(t *testing.T) string {
	var b [6]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		s, err := entity.Open(context.Background(), entity.Config{DSN: os.Getenv(postgresEnv), Table: name})
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer s.Close()
		for _, q := range []string{"DROP TABLE IF EXISTS " + name, "DROP FUNCTION IF EXISTS " + name + "_bump_version()"} {
			if _, err := s.DB().Exec(q); err != nil {
				t.Logf("%s: %v", q, err)
			}
		}
	})
	return name
}

func open(t *testing.T, cfg entity.Config) *entity.Store {
	t.Helper()
	s, err := entity.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func car(id, label string, value int64, group int64) *model.Record {
	return &model.Record{
		Ref:   model.Ref{Type: "vehicles", ID: id},
		Label: label,
		Fields: map[string]model.Value{
			"make":  model.StringVal(label[:4]),
			"value": model.DecimalVal(value*100, 2),
			"group": model.IntVal(group),
		},
	}
}

func seeds() []*model.Record {
	return []*model.Record{
		car("golf", "Volkswagen Golf", 19200, 18),
		car("fiesta", "Ford Fiesta", 10450, 13),
		car("model3", "Tesla Model 3", 38500, 48),
		{Ref: model.Ref{Type: "providers", ID: "amex", Version: 7}, Label: "American Express",
			Fields: map[string]model.Value{"fee": model.DecimalVal(125, 2), "credit": model.BoolVal(true)}},
	}
}

func TestStore(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Run("ResolveAndChoices", func(t *testing.T) { testResolveAndChoices(t, b) })
			t.Run("SeedTwice", func(t *testing.T) { testSeedTwice(t, b) })
			t.Run("Update", func(t *testing.T) { testUpdate(t, b) })
			t.Run("HandEditBumpsVersion", func(t *testing.T) { testHandEdit(t, b) })
			t.Run("FieldTypes", func(t *testing.T) { testFieldTypes(t, b) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, b) })
		})
	}
}

func testResolveAndChoices(t *testing.T, b backend) {
	cfg := b.cfg(t)
	cfg.Seed = seeds()
	s := open(t, cfg)
	ctx := t.Context()

	e, err := s.Resolve(ctx, model.Ref{Type: "vehicles", ID: "fiesta", Version: 99})
	if err != nil {
		t.Fatal(err)
	}
	r := e.(*model.Record)
	if r.Ref != (model.Ref{Type: "vehicles", ID: "fiesta", Version: 1}) || r.Label != "Ford Fiesta" {
		t.Fatalf("resolved %+v", r)
	}
	if u, sc := r.Field("value").Decimal(); u != 1045000 || sc != 2 || r.Field("value").Kind() != model.KindDecimal {
		t.Errorf("value = %v (%s)", r.Field("value"), r.Field("value").Kind())
	}
	if r.Field("group").Int() != 13 || r.Field("make").Str() != "Ford" {
		t.Errorf("fields = %v", r.Fields)
	}
	p, err := s.Resolve(ctx, model.Ref{Type: "providers", ID: "amex"})
	if err != nil {
		t.Fatal(err)
	}
	if p.EntityRef().Version != 7 || !p.(*model.Record).Field("credit").Bool() {
		t.Errorf("seeded version or bool lost: %+v", p)
	}

	for _, missing := range []model.Ref{{Type: "vehicles", ID: "trabant"}, {Type: "boats", ID: "golf"}} {
		if _, err := s.Resolve(ctx, missing); !errors.Is(err, model.ErrUnresolved) {
			t.Errorf("Resolve(%s) = %v, want ErrUnresolved", missing, err)
		}
	}

	ch, err := s.Choices(ctx, "vehicles")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range ch {
		ids = append(ids, c.EntityRef().ID)
	}
	if fmt.Sprint(ids) != "[golf fiesta model3]" {
		t.Errorf("choices in %v, want the seed order", ids)
	}
	if ch, err := s.Choices(ctx, "boats"); err != nil || len(ch) != 0 {
		t.Errorf("choices of an unknown type = %v, %v", ch, err)
	}
}

func testSeedTwice(t *testing.T, b backend) {
	cfg := b.cfg(t)
	cfg.Seed = seeds()
	s := open(t, cfg)
	ctx := t.Context()
	if _, err := s.Update(ctx, car("golf", "Volkswagen Golf Mk8", 18000, 18)); err != nil {
		t.Fatal(err)
	}
	// A second process starting with the same seeds: nothing is created,
	// and the update survives.
	s2 := open(t, cfg)
	if n, err := s2.Seed(ctx, seeds()...); err != nil || n != 0 {
		t.Fatalf("second seed created %d, %v", n, err)
	}
	e, err := s2.Resolve(ctx, model.Ref{Type: "vehicles", ID: "golf"})
	if err != nil {
		t.Fatal(err)
	}
	if e.EntityRef().Version != 2 || e.(*model.Record).Label != "Volkswagen Golf Mk8" {
		t.Errorf("seeding again reset the entity: %+v", e)
	}
	// A later release that seeds one more entity adds only that one.
	more := append(seeds(), car("corsa", "Vauxhall Corsa", 9800, 10))
	if n, err := s2.Seed(ctx, more...); err != nil || n != 1 {
		t.Errorf("seed with one new entity created %d, %v", n, err)
	}
}

func testUpdate(t *testing.T, b backend) {
	cfg := b.cfg(t)
	cfg.Seed = seeds()
	s := open(t, cfg)
	ctx := t.Context()

	up := car("model3", "Tesla Model 3 Long Range", 36900, 50)
	got, err := s.Update(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ref.Version != 2 || got.Label != "Tesla Model 3 Long Range" {
		t.Fatalf("update returned %+v", got)
	}
	e, err := s.Resolve(ctx, model.Ref{Type: "vehicles", ID: "model3", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if e.EntityRef().Version != 2 || e.(*model.Record).Field("group").Int() != 50 {
		t.Errorf("resolve after update: %+v", e)
	}

	// Compare-and-set: the version named must be the current one.
	up.Ref.Version = 1
	if _, err := s.Update(ctx, up); !errors.Is(err, entity.ErrVersionConflict) {
		t.Errorf("update of version 1 after 2 = %v, want ErrVersionConflict", err)
	}
	up.Ref.Version = 2
	if got, err := s.Update(ctx, up); err != nil || got.Ref.Version != 3 {
		t.Errorf("update of the current version = %+v, %v", got, err)
	}

	if _, err := s.Update(ctx, car("trabant", "Trabant 601", 900, 1)); !errors.Is(err, model.ErrUnresolved) {
		t.Errorf("update of a missing entity = %v, want ErrUnresolved", err)
	}
	bad := car("golf", "Golf", 1, 1)
	bad.Fields["photo"] = model.BytesVal([]byte{1, 2})
	if _, err := s.Update(ctx, bad); err == nil {
		t.Error("update with a bytes field succeeded")
	}
}

// testHandEdit changes a row with plain SQL, as an operator might, without
// touching the version: the trigger bumps it, so sessions still notice.
func testHandEdit(t *testing.T, b backend) {
	cfg := b.cfg(t)
	cfg.Seed = seeds()
	s := open(t, cfg)
	ctx := t.Context()
	q := "UPDATE " + s.Table() + " SET label = 'Ford Fiesta ST' WHERE type = 'vehicles' AND id = 'fiesta'"
	if _, err := s.DB().ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
	e, err := s.Resolve(ctx, model.Ref{Type: "vehicles", ID: "fiesta"})
	if err != nil {
		t.Fatal(err)
	}
	if e.EntityRef().Version != 2 || e.(*model.Record).Label != "Ford Fiesta ST" {
		t.Errorf("after a hand edit: %+v, want version 2", e)
	}
	// An edit that sets the version itself is taken as it is.
	q = "UPDATE " + s.Table() + " SET label = 'Ford Fiesta', version = 10 WHERE type = 'vehicles' AND id = 'fiesta'"
	if _, err := s.DB().ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Resolve(ctx, model.Ref{Type: "vehicles", ID: "fiesta"}); e == nil || e.EntityRef().Version != 10 {
		t.Errorf("after an edit setting version 10: %+v", e)
	}
}

func testFieldTypes(t *testing.T, b backend) {
	cfg := b.cfg(t)
	when := time.Date(2026, 3, 1, 8, 30, 0, 123456789, time.UTC)
	fields := map[string]model.Value{
		"name":     model.StringVal(`Škoda "Octavia" ✓`),
		"year":     model.IntVal(2020),
		"negative": model.IntVal(-42),
		"price":    model.DecimalVal(1560000, 2),
		"rate":     model.DecimalVal(50, 3), // 0.050: the scale survives
		"below":    model.DecimalVal(-75, 2),
		"electric": model.BoolVal(false),
		"since":    model.TimeVal(when),
		"nothing":  model.Null,
	}
	cfg.Seed = []*model.Record{{Ref: model.Ref{Type: "t", ID: "x"}, Label: "x", Fields: fields}}
	s := open(t, cfg)
	e, err := s.Resolve(t.Context(), model.Ref{Type: "t", ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	got := e.(*model.Record).Fields
	for k, want := range fields {
		if !got[k].Equal(want) {
			t.Errorf("field %s: got %v (%s), want %v (%s)", k, got[k], got[k].Kind(), want, want.Kind())
		}
	}
	if len(got) != len(fields) {
		t.Errorf("got %d fields, want %d", len(got), len(fields))
	}
}

// testConcurrent opens two Stores on one database at the same moment, both
// seeding, then updates one entity from both at once: every update counts.
func testConcurrent(t *testing.T, b backend) {
	cfg := b.cfg(t)
	cfg.Seed = seeds()
	ctx := t.Context()
	stores := make([]*entity.Store, 2)
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = entity.Open(ctx, cfg) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("store %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}

	const each = 10
	for i, s := range stores {
		wg.Go(func() {
			for n := range each {
				r := car("golf", fmt.Sprintf("Golf %d.%d", i, n), 19000, 18)
				if _, err := s.Update(ctx, r); err != nil {
					t.Errorf("store %d update %d: %v", i, n, err)
					return
				}
				if _, err := s.Resolve(ctx, r.Ref); err != nil {
					t.Errorf("store %d resolve: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	e, err := stores[0].Resolve(ctx, model.Ref{Type: "vehicles", ID: "golf"})
	if err != nil {
		t.Fatal(err)
	}
	if v := e.EntityRef().Version; v != 1+2*each {
		t.Errorf("version after %d updates = %d, want %d", 2*each, v, 1+2*each)
	}
	ch, err := stores[1].Choices(ctx, "vehicles")
	if err != nil || len(ch) != 3 {
		t.Errorf("choices after concurrent seeding: %d, %v", len(ch), err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []entity.Config{
		{},
		{DSN: "x.db", Table: "Entities"},
		{DSN: "x.db", Table: "drop table; --"},
		{DSN: "x.db", QueryTimeout: -1},
		{DSN: "x.db", Seed: []*model.Record{{Ref: model.Ref{Type: "vehicles"}}}},
		{DSN: "x.db", Seed: []*model.Record{nil}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	if err := (entity.Config{DSN: "x.db", Table: "quote_entities"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestOpenRefusesUnsharedSQLite(t *testing.T) {
	for _, dsn := range []string{":memory:", "file:x?mode=memory", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := entity.Open(t.Context(), entity.Config{DSN: dsn}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
	if _, err := entity.Open(t.Context(), entity.Config{DSN: filepath.Join(t.TempDir(), "no", "such", "dir.db")}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestSQLiteFileURI(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "uri.db") + "?cache=private"
	s := open(t, entity.Config{DSN: dsn, Seed: seeds()})
	var mode string
	if err := s.DB().QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.DB().QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
}

func TestPostgresPasswordNotInErrors(t *testing.T) {
	_, err := entity.Open(t.Context(), entity.Config{
		DSN:          "postgres://ann:s3cret@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
		QueryTimeout: 2 * time.Second,
	})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if s := err.Error(); strings.Contains(s, "s3cret") {
		t.Errorf("error shows the password: %s", s)
	}
}
