package entity

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"understudy/model"
)

// Defaults for Config.
const (
	// DefaultTable is the table entities live in.
	DefaultTable = "entities"
	// DefaultBusyTimeout is how long a SQLite writer waits for another
	// connection's (or process's) lock before it gives up. Writes are rare
	// and short (an operator's update, a seed), so a few seconds covers any
	// honest contention.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultQueryTimeout bounds one call when its context has no deadline:
	// materializing a session waits on Resolve, and a hung database must not
	// hang a failover.
	DefaultQueryTimeout = 5 * time.Second
	// DefaultMaxOpenConns bounds the connections of one Store.
	DefaultMaxOpenConns = 8
)

// Config configures a Store.
type Config struct {
	// DSN names the database. "postgres://" and "postgresql://" URLs open
	// PostgreSQL through pgx; anything else is a SQLite file path, or a
	// "file:" URI, opened through modernc.org/sqlite (the file is created
	// when missing; its directory must exist).
	DSN string
	// Table is the table entities live in. Default DefaultTable. Tests use
	// one table each to share a database.
	Table string
	// Seed lists entities to create when missing, in the order Choices
	// offers them. An entity that exists is left as it is, whatever its
	// version: seeding is for first runs, Update for changes. A seed with
	// version 0 starts at version 1.
	Seed []*model.Record
	// BusyTimeout is how long a SQLite writer waits for a lock. Default
	// DefaultBusyTimeout. Ignored by PostgreSQL.
	BusyTimeout time.Duration
	// QueryTimeout bounds a call whose context has no deadline. Default
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	// MaxOpenConns bounds the Store's connections. Default
	// DefaultMaxOpenConns.
	MaxOpenConns int
}

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("no DSN"))
	}
	if c.Table != "" && !tableName.MatchString(c.Table) {
		errs = append(errs, fmt.Errorf("table %q: want lower-case letters, digits and _, at most 48", c.Table))
	}
	if c.BusyTimeout < 0 || c.QueryTimeout < 0 || c.MaxOpenConns < 0 {
		errs = append(errs, errors.New("negative timeout or connection count"))
	}
	for _, r := range c.Seed {
		if err := checkRecord(r); err != nil {
			errs = append(errs, fmt.Errorf("seed: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("entity config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	return c
}

// MaxIDLen bounds an entity's type and id: the model accepts no longer id
// from a form, and a key that long is a mistake.
const MaxIDLen = 128

// checkRecord checks what the table's constraints would otherwise refuse
// with a less helpful message.
func checkRecord(r *model.Record) error {
	switch {
	case r == nil:
		return errors.New("nil record")
	case r.Ref.Type == "" || r.Ref.ID == "":
		return fmt.Errorf("entity %s: empty type or id", r.Ref)
	case len(r.Ref.Type) > MaxIDLen || len(r.Ref.ID) > MaxIDLen:
		return fmt.Errorf("entity %.40s: type or id longer than %d bytes", r.Ref.String(), MaxIDLen)
	case r.Ref.Version > 1<<62:
		return fmt.Errorf("entity %s: version out of range", r.Ref)
	}
	return nil
}
