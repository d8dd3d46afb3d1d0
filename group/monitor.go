package group

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/group/protocol"
)

// Monitor follows a group from outside: its entry (who owns it, at which
// epoch, how long since the last renewal) and its members' heartbeats.
// Gateways route by it, the replay tool and /metrics report it, and every
// Member watches its group through one.
type Monitor struct {
	nc       *nats.Conn
	kv       jetstream.KeyValue
	subjects broker.Subjects
	group    string
	log      *slog.Logger
	onEntry  func(e Entry, exists bool)
	onLoaded func()

	mu      sync.Mutex
	entry   Entry
	have    bool
	loaded  bool
	seen    time.Time
	changed chan struct{}
	members map[string]member
	pruned  time.Time
	started time.Time // when heartbeats were first listened to

	watch jetstream.KeyWatcher
	sub   *nats.Subscription
	done  chan struct{}
}

type member struct {
	hb   Heartbeat
	seen time.Time
}

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	Subjects broker.Subjects
	Group    string // default DefaultGroup
	Logger   *slog.Logger
	// OnEntry, if set, is called from the watching goroutine with each new
	// revision of the entry, in revision order, after the monitor has
	// recorded it. It must not block.
	OnEntry func(e Entry, exists bool)
	// OnLoaded, if set, is called once the entry's initial state has been
	// delivered.
	OnLoaded func()
}

// NewMonitor returns a monitor. It does no I/O.
func NewMonitor(nc *nats.Conn, kv jetstream.KeyValue, cfg MonitorConfig) *Monitor {
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Monitor{
		nc: nc, kv: kv, subjects: cfg.Subjects, group: cfg.Group, log: cfg.Logger, onEntry: cfg.OnEntry, onLoaded: cfg.OnLoaded,
		changed: make(chan struct{}), members: map[string]member{}, done: make(chan struct{}),
	}
}

// Start watches the entry and the heartbeats and returns once the entry's
// current state is known. It tries the watch again until NATS answers or
// ctx ends: a gateway restarted while a cluster elects the bucket's leader
// waits for it rather than exiting (a chaos run saw that).
func (m *Monitor) Start(ctx context.Context) error {
	var w jetstream.KeyWatcher
	err := broker.Retry(ctx, m.log, "watching group "+m.group, nil, func() error {
		var err error
		w, err = m.kv.Watch(ctx, m.group)
		return err
	})
	if err != nil {
		return fmt.Errorf("group %s: watch: %w", m.group, err)
	}
	m.watch = w
	go m.loop()
	m.mu.Lock()
	m.started = time.Now()
	m.mu.Unlock()
	if m.sub, err = m.nc.Subscribe(m.subjects.HeartbeatFilter(), m.onHeartbeat); err != nil {
		return fmt.Errorf("group %s: heartbeats: %w", m.group, err)
	}
	for {
		_, _, _, loaded, ch := m.state()
		if loaded {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("group %s: waiting for the group entry: %w", m.group, ctx.Err())
		}
	}
}

// Close stops watching.
func (m *Monitor) Close() {
	if m.sub != nil {
		m.sub.Unsubscribe()
	}
	if m.watch != nil {
		m.watch.Stop()
		<-m.done
	}
}

func (m *Monitor) loop() {
	defer close(m.done)
	for e := range m.watch.Updates() {
		if e == nil {
			m.mu.Lock()
			first := !m.loaded
			m.loaded = true
			m.notifyLocked()
			m.mu.Unlock()
			if first && m.onLoaded != nil {
				m.onLoaded()
			}
			continue
		}
		entry, exists := Entry{Revision: e.Revision()}, false
		if e.Operation() == jetstream.KeyValuePut {
			var err error
			if entry, err = protocol.DecodeEntry(e.Value(), e.Revision()); err != nil {
				m.log.Error("unreadable group entry", "group", m.group, "err", err)
				continue
			}
			exists = true
		}
		m.mu.Lock()
		if m.entry.Revision >= entry.Revision && (m.have || m.entry.Revision != 0) {
			// A redelivery of an older revision: routing and lease ages
			// follow the newest only.
			m.mu.Unlock()
			continue
		}
		m.entry, m.have, m.seen = entry, exists, time.Now()
		m.notifyLocked()
		m.mu.Unlock()
		if m.onEntry != nil {
			m.onEntry(entry, exists)
		}
	}
}

func (m *Monitor) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// state returns the newest entry, whether it exists, when it was seen,
// whether the initial state has been read, and a channel closed at the
// next change.
func (m *Monitor) state() (Entry, bool, time.Time, bool, chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entry, m.have, m.seen, m.loaded, m.changed
}

// Owner returns the newest entry and whether the group exists.
func (m *Monitor) Owner() (Entry, bool) {
	e, have, _, _, _ := m.state()
	return e, have
}

// Changed returns a channel closed at the entry's next change.
func (m *Monitor) Changed() <-chan struct{} {
	_, _, _, _, ch := m.state()
	return ch
}

// WaitFor waits until cond holds for the entry, or ctx ends.
func (m *Monitor) WaitFor(ctx context.Context, cond func(e Entry, exists bool) bool) (Entry, error) {
	for {
		e, have, _, _, ch := m.state()
		if cond(e, have) {
			return e, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return e, ctx.Err()
		}
	}
}

func (m *Monitor) onHeartbeat(msg *nats.Msg) {
	var hb Heartbeat
	if err := json.Unmarshal(msg.Data, &hb); err != nil || hb.Group != m.group {
		return
	}
	slices.Sort(hb.Apps) // Versions searches them

	now := time.Now()
	m.mu.Lock()
	m.members[hb.Node] = member{hb, now}
	if now.Sub(m.pruned) > forgetMember/10 {
		// Nodes come and go under new names (a deployment per release):
		// forget those long silent.
		m.pruned = now
		for name, mb := range m.members {
			if now.Sub(mb.seen) > forgetMember {
				delete(m.members, name)
			}
		}
	}
	m.mu.Unlock()
}

// forgetMember is how long a silent member stays in Status (marked Gone).
const forgetMember = 10 * time.Minute

// Status is the group as an operator sees it.
type Status struct {
	Group    string        `json:"group"`
	Exists   bool          `json:"exists"`
	Epoch    uint64        `json:"epoch"`
	Owner    string        `json:"owner"`
	Address  string        `json:"address"`
	Fence    uint64        `json:"fence"`
	Released bool          `json:"released"`
	LeaseAge time.Duration `json:"lease_age"` // since the last renewal was seen here
	Renewals uint64        `json:"renewals"`
	Members  []MemberState `json:"members"`
}

// MemberState is a node as its heartbeats describe it.
type MemberState struct {
	Heartbeat
	Age  time.Duration `json:"age"`  // since its last heartbeat
	Gone bool          `json:"gone"` // no heartbeat for three periods
}

// Status returns the group's state. Members whose heartbeats stopped more
// than gone ago are marked Gone.
func (m *Monitor) Status(gone time.Duration) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{Group: m.group, Exists: m.have, Epoch: m.entry.Epoch, Owner: m.entry.Owner, Address: m.entry.Address,
		Fence: m.entry.Fence, Released: m.entry.Released, Renewals: m.entry.Renewals}
	if m.have {
		s.LeaseAge = time.Since(m.seen)
	}
	for _, mb := range m.members {
		age := time.Since(mb.seen)
		s.Members = append(s.Members, MemberState{Heartbeat: mb.hb, Age: age, Gone: age > gone})
	}
	slices.SortFunc(s.Members, func(a, b MemberState) int { return strings.Compare(a.Node, b.Node) })
	return s
}

// Backups counts the members that are live backups.
func (s Status) Backups() int {
	n := 0
	for _, mb := range s.Members {
		if !mb.Gone && mb.Role == Backup.String() && mb.Node != s.Owner {
			n++
		}
	}
	return n
}
