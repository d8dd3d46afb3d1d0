package entity

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// dialect is what differs between SQLite and PostgreSQL.
type dialect uint8

const (
	sqliteDialect dialect = iota + 1
	postgresDialect
)

func (d dialect) String() string {
	if d == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// rebind turns the ? placeholders the queries are written with into
// PostgreSQL's $1, $2... The queries hold no ? of their own.
func (d dialect) rebind(q string) string {
	if d != postgresDialect {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// schema returns the statements that create the table, its index and the
// trigger that bumps the version of a row changed by hand. Each is
// idempotent.
func (d dialect) schema(table string) []string {
	r := strings.NewReplacer("{t}", table)
	var stmts []string
	switch d {
	case sqliteDialect:
		stmts = []string{
			`CREATE TABLE IF NOT EXISTS {t} (
				type     TEXT    NOT NULL,
				id       TEXT    NOT NULL,
				version  INTEGER NOT NULL CHECK (version >= 1),
				label    TEXT    NOT NULL,
				position INTEGER NOT NULL DEFAULT 0,
				fields   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(fields)),
				PRIMARY KEY (type, id)
			) STRICT`,
			`CREATE INDEX IF NOT EXISTS {t}_choices ON {t} (type, position, id)`,
			// recursive_triggers is off, so the trigger's own UPDATE does not
			// fire it again (and it changes the version, which it checks).
			`CREATE TRIGGER IF NOT EXISTS {t}_bump_version
				AFTER UPDATE OF label, fields ON {t}
				FOR EACH ROW WHEN NEW.version = OLD.version
					AND (NEW.label IS NOT OLD.label OR NEW.fields IS NOT OLD.fields)
				BEGIN
					UPDATE {t} SET version = OLD.version + 1 WHERE type = OLD.type AND id = OLD.id;
				END`,
		}
	case postgresDialect:
		stmts = []string{
			`CREATE TABLE IF NOT EXISTS {t} (
				type     TEXT    NOT NULL,
				id       TEXT    NOT NULL,
				version  BIGINT  NOT NULL CHECK (version >= 1),
				label    TEXT    NOT NULL,
				position INTEGER NOT NULL DEFAULT 0,
				fields   JSONB   NOT NULL DEFAULT '{}',
				PRIMARY KEY (type, id)
			)`,
			`CREATE INDEX IF NOT EXISTS {t}_choices ON {t} (type, position, id)`,
			`CREATE OR REPLACE FUNCTION {t}_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.version = OLD.version AND (NEW.label, NEW.fields) IS DISTINCT FROM (OLD.label, OLD.fields) THEN
					NEW.version := OLD.version + 1;
				END IF;
				RETURN NEW;
			END $$`,
			// CREATE OR REPLACE TRIGGER needs PostgreSQL 14; this works on
			// older servers too.
			`DO $$ BEGIN
				IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{t}_bump_version' AND tgrelid = '{t}'::regclass) THEN
					CREATE TRIGGER {t}_bump_version BEFORE UPDATE ON {t}
						FOR EACH ROW EXECUTE FUNCTION {t}_bump_version();
				END IF;
			END $$`,
		}
	}
	for i, s := range stmts {
		stmts[i] = r.Replace(s)
	}
	return stmts
}

// migrate creates the schema in one transaction. Several processes may
// start at once: SQLite's transactions begin IMMEDIATE, so they take the
// write lock in turn; PostgreSQL's concurrent CREATE ... IF NOT EXISTS can
// still collide in its catalogs, so they take an advisory lock first.
func migrate(ctx context.Context, db *sql.DB, d dialect, table string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if d == postgresDialect {
		h := fnv.New64a()
		h.Write([]byte("understudy/entity/" + table))
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	for _, stmt := range d.schema(table) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return tx.Commit()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
