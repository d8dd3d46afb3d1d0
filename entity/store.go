package entity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"               // registers "sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"understudy/model"
)

// Store is a model.Resolver over a SQL database. It is safe for concurrent
// use, and several Stores, in one process or several, may share a database.
type Store struct {
	db      *sql.DB
	dialect dialect
	cfg     Config
	where   string // the database, for errors, without a password

	resolveSQL, choicesSQL, seedSQL, updateSQL, casSQL, versionSQL string
}

var _ model.Resolver = (*Store)(nil)

// Open connects to the database cfg.DSN names (see Config.DSN), creates the
// table when it is missing and seeds cfg.Seed. It is safe for several
// processes to Open the same database at once.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{cfg: cfg}
	driver, dsn := "sqlite", ""
	if isPostgres(cfg.DSN) {
		s.dialect, driver, dsn = postgresDialect, "pgx", cfg.DSN
		s.where = "postgres " + redact(cfg.DSN)
	} else {
		var err error
		if dsn, err = sqliteDSN(cfg.DSN, cfg.BusyTimeout); err != nil {
			return nil, err
		}
		s.dialect = sqliteDialect
		s.where = "sqlite " + cfg.DSN
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("entity: open %s: %w", s.where, err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.db = db
	s.buildQueries()

	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if err := s.setup(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// setup makes the database ready: WAL mode for SQLite, the table, the seeds.
// Each part is idempotent, so when several processes create a new SQLite
// file at once, a part that meets one of the locks SQLite does not wait for
// (switching a new file to WAL, recovering another process's WAL) is simply
// tried again.
func (s *Store) setup(ctx context.Context) error {
	wait := 5 * time.Millisecond
	for {
		err := s.setupOnce(ctx)
		if err == nil || !s.busy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

func (s *Store) setupOnce(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("entity: open %s: %w", s.where, err)
	}
	if s.dialect == sqliteDialect {
		// journal_mode is a property of the file: set once, every
		// connection of every process uses it.
		var mode string
		if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
			return fmt.Errorf("entity: open %s: WAL mode: %w", s.where, err)
		}
		if mode != "wal" {
			return fmt.Errorf("entity: open %s: journal mode is %q, not wal", s.where, mode)
		}
	}
	if err := migrate(ctx, s.db, s.dialect, s.cfg.Table); err != nil {
		return fmt.Errorf("entity: create table %s in %s: %w", s.cfg.Table, s.where, err)
	}
	_, err := s.Seed(ctx, s.cfg.Seed...)
	return err
}

// busy reports whether err is SQLite's "database is locked" (SQLITE_BUSY
// and its extended codes).
func (s *Store) busy(err error) bool {
	var se *sqlite.Error
	return s.dialect == sqliteDialect && errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// sqliteDSN adds the settings every connection needs: a busy timeout, so a
// writer waits for another process's lock instead of failing; foreign keys;
// and IMMEDIATE transactions, so a transaction takes the write lock when it
// begins rather than failing to upgrade a read lock halfway through. (WAL,
// so readers never wait for the writer, is set once on the file by Open.)
func sqliteDSN(path string, busy time.Duration) (string, error) {
	if path == ":memory:" || strings.Contains(path, "mode=memory") {
		// Each pooled connection would get a database of its own.
		return "", fmt.Errorf("entity: sqlite %s: an in-memory database cannot be shared; use a file", path)
	}
	if !strings.HasPrefix(path, "file:") && strings.ContainsAny(path, "?#") {
		return "", fmt.Errorf("entity: sqlite %s: a plain path cannot hold ? or #; use a file: URI", path)
	}
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(max(busy.Milliseconds(), 1), 10))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + q.Encode(), nil
}

// redact hides a password in a PostgreSQL URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

// buildQueries writes the queries for the table and dialect once.
func (s *Store) buildQueries() {
	t := s.cfg.Table
	d := s.dialect
	s.resolveSQL = d.rebind(`SELECT version, label, fields FROM ` + t + ` WHERE type = ? AND id = ?`)
	s.choicesSQL = d.rebind(`SELECT id, version, label, fields FROM ` + t + ` WHERE type = ? ORDER BY position, id`)
	s.seedSQL = d.rebind(`INSERT INTO ` + t + ` (type, id, version, label, position, fields) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (type, id) DO NOTHING`)
	s.updateSQL = d.rebind(`UPDATE ` + t + ` SET label = ?, fields = ?, version = version + 1
		WHERE type = ? AND id = ? RETURNING version`)
	s.casSQL = d.rebind(`UPDATE ` + t + ` SET label = ?, fields = ?, version = version + 1
		WHERE type = ? AND id = ? AND version = ? RETURNING version`)
	s.versionSQL = d.rebind(`SELECT version FROM ` + t + ` WHERE type = ? AND id = ?`)
}

// timeout gives ctx the configured deadline when it has none.
func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.QueryTimeout)
}

// Close closes the database connections.
func (s *Store) Close() error { return s.db.Close() }

// DB returns the underlying database, for operators' tools and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Table returns the name of the table entities live in.
func (s *Store) Table() string { return s.cfg.Table }

// Resolve returns the entity of ref's type and id at its current version, a
// *model.Record. An entity that does not exist is an error wrapping
// model.ErrUnresolved.
func (s *Store) Resolve(ctx context.Context, ref model.Ref) (model.Entity, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var (
		version int64
		label   string
		fields  string
	)
	err := s.db.QueryRowContext(ctx, s.resolveSQL, ref.Type, ref.ID).Scan(&version, &label, &fields)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("entity %s/%s in %s: %w", ref.Type, ref.ID, s.where, model.ErrUnresolved)
	}
	if err != nil {
		return nil, fmt.Errorf("entity %s/%s: resolve in %s: %w", ref.Type, ref.ID, s.where, err)
	}
	return s.record(ref.Type, ref.ID, version, label, fields)
}

// Choices returns the entities of a type in the order they were seeded (by
// position, then id).
func (s *Store) Choices(ctx context.Context, entityType string) ([]model.Entity, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, s.choicesSQL, entityType)
	if err != nil {
		return nil, fmt.Errorf("entities %s: choices in %s: %w", entityType, s.where, err)
	}
	defer rows.Close()
	var out []model.Entity
	for rows.Next() {
		var (
			id, label, fields string
			version           int64
		)
		if err := rows.Scan(&id, &version, &label, &fields); err != nil {
			return nil, fmt.Errorf("entities %s: choices in %s: %w", entityType, s.where, err)
		}
		r, err := s.record(entityType, id, version, label, fields)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("entities %s: choices in %s: %w", entityType, s.where, err)
	}
	return out, nil
}

func (s *Store) record(typ, id string, version int64, label, fields string) (*model.Record, error) {
	f, err := decodeFields(fields)
	if err != nil {
		return nil, fmt.Errorf("entity %s/%s@%d in %s: %w", typ, id, version, s.where, err)
	}
	return &model.Record{Ref: model.Ref{Type: typ, ID: id, Version: uint64(version)}, Label: label, Fields: f}, nil
}

// Seed creates the entities that do not exist yet, in one transaction, and
// reports how many it created. An entity that exists is left unchanged:
// seeding twice, or from two processes at once, is harmless. Entities are
// offered by Choices in the order given here.
func (s *Store) Seed(ctx context.Context, recs ...*model.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	type row struct {
		r      *model.Record
		fields string
	}
	rows := make([]row, len(recs))
	for i, r := range recs {
		if err := checkRecord(r); err != nil {
			return 0, fmt.Errorf("entity: seed: %w", err)
		}
		f, err := encodeFields(r.Fields)
		if err != nil {
			return 0, fmt.Errorf("entity %s/%s: seed: %w", r.Ref.Type, r.Ref.ID, err)
		}
		rows[i] = row{r, f}
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("entity: seed %s: %w", s.where, err)
	}
	defer tx.Rollback()
	added := 0
	for i, x := range rows {
		ref := x.r.Ref
		res, err := tx.ExecContext(ctx, s.seedSQL, ref.Type, ref.ID, int64(max(ref.Version, 1)), x.r.Label, i, x.fields)
		if err != nil {
			return 0, fmt.Errorf("entity %s/%s: seed %s: %w", ref.Type, ref.ID, s.where, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			added += int(n)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("entity: seed %s: %w", s.where, err)
	}
	return added, nil
}

// Update replaces an entity's label and fields and bumps its version by
// one, atomically, and returns the entity as it now is. When rec.Ref.Version
// is not 0 it is a compare-and-set: the update happens only if that is still
// the current version, and otherwise fails with ErrVersionConflict. An
// entity that does not exist is an error wrapping model.ErrUnresolved:
// Update never creates one.
//
// Sessions that refer to the entity at its old version see the change when
// a backup materializes them, and their fields' stale rules apply.
func (s *Store) Update(ctx context.Context, rec *model.Record) (*model.Record, error) {
	if err := checkRecord(rec); err != nil {
		return nil, fmt.Errorf("entity: update: %w", err)
	}
	ref := rec.Ref
	fields, err := encodeFields(rec.Fields)
	if err != nil {
		return nil, fmt.Errorf("entity %s/%s: update: %w", ref.Type, ref.ID, err)
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var version int64
	if ref.Version == 0 {
		err = s.db.QueryRowContext(ctx, s.updateSQL, rec.Label, fields, ref.Type, ref.ID).Scan(&version)
	} else {
		err = s.db.QueryRowContext(ctx, s.casSQL, rec.Label, fields, ref.Type, ref.ID, int64(ref.Version)).Scan(&version)
	}
	if errors.Is(err, sql.ErrNoRows) {
		// Either the entity is missing or its version moved on: say which.
		var cur int64
		switch err := s.db.QueryRowContext(ctx, s.versionSQL, ref.Type, ref.ID).Scan(&cur); {
		case errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("entity %s/%s: update in %s: %w", ref.Type, ref.ID, s.where, model.ErrUnresolved)
		case err != nil:
			return nil, fmt.Errorf("entity %s/%s: update in %s: %w", ref.Type, ref.ID, s.where, err)
		}
		return nil, fmt.Errorf("entity %s: update in %s: current version %d: %w", ref, s.where, cur, ErrVersionConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("entity %s/%s: update in %s: %w", ref.Type, ref.ID, s.where, err)
	}
	// Read the fields back from their stored form, so the record returned is
	// exactly what Resolve returns from now on.
	return s.record(ref.Type, ref.ID, version, rec.Label, fields)
}
