package group

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"understudy/broker"
	"understudy/group/protocol"
)

// testHookWrite, when set by a test, runs before each attempt to write the
// entry; blocking in it stands for a node paused (SIGSTOP) as it writes.
var testHookWrite atomic.Pointer[func(node string, w protocol.Write)]

// chainConnHandlers tells the core of every disconnect and reconnect,
// keeping whatever handlers were set: anything sent before may have been
// lost, and the group may have changed hands meanwhile. A watched
// connection (see Watch) counts as the member's own: the core is
// connected while every one of them is.
func (m *Member) chainConnHandlers() {
	m.down = make([]bool, len(m.conns))
	for i, nc := range m.conns {
		prevDisc, prevRec := nc.Opts.DisconnectedErrCB, nc.Opts.ReconnectedCB
		nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
			if prevDisc != nil {
				prevDisc(c, err)
			}
			m.do(func(now protocol.Mono) []protocol.Action {
				was := m.allUpLocked()
				m.down[i] = true
				if !was {
					return nil
				}
				return m.core.Disconnected(now)
			})
		})
		nc.SetReconnectHandler(func(c *nats.Conn) {
			if prevRec != nil {
				prevRec(c)
			}
			m.do(func(now protocol.Mono) []protocol.Action {
				m.told[i] = c.Stats().Reconnects
				was := m.allUpLocked()
				m.down[i] = false
				if was || !m.allUpLocked() {
					return nil
				}
				return m.core.Reconnected(now)
			})
			if i == 0 {
				m.goIO(func() { m.checkStandalone(m.ctx) })
			}
		})
	}
}

// allUpLocked reports whether every connection of the member is up, as
// their handlers last said.
func (m *Member) allUpLocked() bool {
	return !slices.Contains(m.down, true)
}

// Watch adds a connection whose loss the member takes as its own, to be
// called before Start: the node's data connection, when the member has a
// connection of its own, so that a primary that cannot publish stops
// renewing and hands the group on, as it did when the two were one. The
// member answers pings on it too, so that the fast path takes a node for
// crashed only once every connection it could publish on is gone.
func (m *Member) Watch(nc *nats.Conn) { m.watched = append(m.watched, nc) }

// checkStandalone asks whether the server this node is connected to says
// it is a standalone server (FastPathAuto): see broker.AskStandalone.
func (m *Member) checkStandalone(ctx context.Context) {
	if m.cfg.FastPath != FastPathAuto {
		return
	}
	ok := broker.AskStandalone(ctx, m.nc, m.cfg.Subjects)
	if m.standalone.Swap(ok) != ok || ok {
		m.log.Debug("fast path for a crash", "standalone_server", ok)
	}
}

// fastPathAllowed reports whether a crashed primary may be replaced
// without waiting out its lease: only where every member is known to share
// one standalone server. Interest seen from one server of a cluster, or of
// a server with leafnode or gateway connections, can be stale or missing.
func (m *Member) fastPathAllowed() bool {
	switch m.cfg.FastPath {
	case FastPathOn:
		return true
	case FastPathOff:
		return false
	}
	return m.standalone.Load() && m.nc.ConnectedClusterName() == ""
}
