package group

import (
	"slices"
	"time"

	"understudy/model"
)

// Versions is what the live members of a group can materialize, as their
// heartbeats announce it (Heartbeat.Apps): a member is live while its
// newest heartbeat is younger than the freshness window Monitor.Versions
// is asked with. A primary moves a session to an application version only
// when Can says every live member can rebuild it, so that no member that
// may take over next holds a snapshot it cannot restore.
type Versions struct {
	// Known: the monitor has listened to heartbeats for a whole window,
	// so every live member has been heard from. Until then Can answers no.
	Known bool
	// Members are the live members' announced versions, by node name,
	// sorted; nil for a member that announces none (a build before
	// announcements), which can be trusted with nothing new.
	Members map[string][]string
}

// Can reports whether every live member announces application name at
// version. It is false while the members are not Known, and for a member
// that announces nothing.
func (v Versions) Can(name string, version int) bool {
	if !v.Known {
		return false
	}
	return v.Has(model.AppKey(name, version))
}

// Has reports whether every live member announces the application
// version key ("name@version", model.AppKey). It is false while the
// members are not Known, and for a member that announces nothing.
func (v Versions) Has(key string) bool {
	if !v.Known {
		return false
	}
	for _, apps := range v.Members {
		if _, ok := slices.BinarySearch(apps, key); !ok {
			return false
		}
	}
	return true
}

// Versions returns what the members heard from within fresh (three
// heartbeat periods is the usual window) announce they can materialize.
func (m *Monitor) Versions(fresh time.Duration) Versions {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	v := Versions{Known: !m.started.IsZero() && now.Sub(m.started) >= fresh, Members: map[string][]string{}}
	for name, mb := range m.members {
		if now.Sub(mb.seen) <= fresh {
			v.Members[name] = mb.hb.Apps
		}
	}
	return v
}
