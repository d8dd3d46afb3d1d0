package model

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
)

// Ref is a canonical value's logical reference to a database entity: what a
// snapshot stores instead of the entity's bytes. A backup resolves it from the
// same database when it materializes the session; Version lets it notice that
// the entity changed in between.
type Ref struct {
	Type    string // entity type, "vehicles"
	ID      string // object id within the type
	Version uint64 // the entity's version when the session referred to it
}

func (r Ref) String() string {
	return r.Type + "/" + r.ID + "@" + strconv.FormatUint(r.Version, 10)
}

// sameEntity reports whether r and o name the same entity, whatever version.
func (r Ref) sameEntity(o Ref) bool { return r.Type == o.Type && r.ID == o.ID }

// Entity is a Go value that lives in a database. Putting one in a step's
// state stores its Ref; the live value comes back through a Resolver. An
// Entity that implements fmt.Stringer is shown to users by that label.
type Entity interface {
	EntityRef() Ref
}

// Resolver loads entities for canonical values. Implementations talk to a
// database (see package entity); the in-memory MemResolver serves tests.
type Resolver interface {
	// Resolve returns the entity of ref's type and id at its current
	// version, which may differ from ref.Version. An entity that does not
	// exist is an error wrapping ErrUnresolved.
	Resolve(ctx context.Context, ref Ref) (Entity, error)
	// Choices returns the entities of a type that a user may choose from,
	// in the order to offer them.
	Choices(ctx context.Context, entityType string) ([]Entity, error)
}

// Record is a generic entity: a reference, a label and named fields. SQL
// resolvers return Records, so an application needs no Go type per table.
type Record struct {
	Ref    Ref
	Label  string
	Fields map[string]Value
}

var _ Entity = (*Record)(nil)

// EntityRef returns the record's reference.
func (r *Record) EntityRef() Ref { return r.Ref }

// String returns the record's label.
func (r *Record) String() string { return r.Label }

// Field returns the named field, or null.
func (r *Record) Field(name string) Value { return r.Fields[name] }

// entityLabel is how users see an entity.
func entityLabel(e Entity) string {
	if s, ok := e.(fmt.Stringer); ok {
		return s.String()
	}
	return e.EntityRef().ID
}

// MemResolver is a Resolver over entities held in memory, for tests and
// examples. It is safe for concurrent use.
type MemResolver struct {
	mu       sync.RWMutex
	entities map[[2]string]Entity
}

var _ Resolver = (*MemResolver)(nil)

// NewMemResolver returns a resolver holding the given entities.
func NewMemResolver(entities ...Entity) *MemResolver {
	r := &MemResolver{entities: make(map[[2]string]Entity)}
	for _, e := range entities {
		r.Put(e)
	}
	return r
}

// Put adds or replaces an entity (a new version replaces the old).
func (r *MemResolver) Put(e Entity) {
	ref := e.EntityRef()
	r.mu.Lock()
	r.entities[[2]string{ref.Type, ref.ID}] = e
	r.mu.Unlock()
}

// Resolve returns the current entity of ref's type and id.
func (r *MemResolver) Resolve(_ context.Context, ref Ref) (Entity, error) {
	r.mu.RLock()
	e, ok := r.entities[[2]string{ref.Type, ref.ID}]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s/%s: %w", ref.Type, ref.ID, ErrUnresolved)
	}
	return e, nil
}

// Choices returns the entities of a type ordered by id.
func (r *MemResolver) Choices(_ context.Context, entityType string) ([]Entity, error) {
	r.mu.RLock()
	var out []Entity
	for k, e := range r.entities {
		if k[0] == entityType {
			out = append(out, e)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entity) int { return cmp.Compare(a.EntityRef().ID, b.EntityRef().ID) })
	return out, nil
}
