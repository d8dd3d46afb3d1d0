// Package entity keeps the canonical values of understudy's sessions in a
// real SQL database and resolves them for the model: Store is a
// model.Resolver over database/sql.
//
// A session stores an entity it refers to (a car, a payment provider) as a
// model.Ref: type, id and the version it saw. Primary and backups open the
// same database, so a backup that materializes a snapshot resolves the same
// entity, and the version tells it whether the entity changed in between
// (what then happens is the field's model.StaleRule, applied by the model).
//
// # Databases
//
// Open chooses the database by its DSN:
//
//	postgres://user@host:5432/db?sslmode=disable   PostgreSQL, through pgx
//	/var/lib/understudy/entities.db                SQLite, through modernc.org/sqlite
//
// SQLite is the embedded default: one file that the nodes of one machine
// share. The file is in WAL mode (readers never block the writer); every
// connection sets a busy timeout (a writer waits for another process's lock
// instead of failing) and foreign keys, and begins its transactions
// IMMEDIATE, so several processes may open, seed and update the same file
// at once.
// PostgreSQL serves nodes on several machines.
//
// # Layout
//
// All entity types share one table (Config.Table, default "entities"):
//
//	type, id      the entity's identity (primary key)
//	version       bumped by every change: what stale detection compares
//	label         what a user is shown
//	position      the order Choices offers entities in
//	fields        a JSON object of the entity's typed values
//
// One generic table rather than a table per type, because the resolver is
// generic: a model.Record is a reference, a label and named fields, so an
// application adds an entity type with data, not with a migration and a Go
// type; and versioning, seeding and resolving are one query each for every
// type. The price is that the database does not check the fields' types;
// entities here are reference data an application reads, not data it owns.
//
// Fields are stored as JSON that keeps their model types: a string is a
// JSON string, an int a JSON integer, a decimal a JSON number written with
// its scale (31000.00 reads back as DecimalVal(3100000, 2); a decimal of
// scale 0 reads back as an int, which Value.Decimal treats alike), a bool a
// JSON boolean, a time {"time": "RFC 3339"}. Other kinds are refused.
//
// # Guarantees
//
//   - Open creates the table and seeds Config.Seed when they are missing,
//     idempotently and safely when several processes start at once: seeding
//     never overwrites an entity that exists, so a restart keeps what
//     operators changed.
//   - Resolve returns the entity at its current version, never a cached
//     one; an entity that does not exist is an error wrapping
//     model.ErrUnresolved.
//   - Every change bumps the version: Update does it explicitly, and a
//     trigger does it for an UPDATE made by hand in SQL that changes the
//     label or fields and forgets the version, so stale detection cannot be
//     defeated by an operator's shortcut.
package entity
