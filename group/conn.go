package group

import (
	"context"
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
// lost, and the group may have changed hands meanwhile.
func (m *Member) chainConnHandlers() {
	prevDisc, prevRec := m.nc.Opts.DisconnectedErrCB, m.nc.Opts.ReconnectedCB
	m.nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		if prevDisc != nil {
			prevDisc(c, err)
		}
		m.do(m.core.Disconnected)
	})
	m.nc.SetReconnectHandler(func(c *nats.Conn) {
		if prevRec != nil {
			prevRec(c)
		}
		m.do(func(now protocol.Mono) []protocol.Action {
			m.told = c.Stats().Reconnects
			return m.core.Reconnected(now)
		})
		m.goIO(func() { m.checkStandalone(m.ctx) })
	})
}

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
