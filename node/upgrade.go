package node

import (
	"context"
	"slices"
	"strings"
	"time"

	"understudy/group"
	"understudy/model"
)

// Upgrades: the nodes of a group may run different builds for a while (a
// rolling deploy). Each announces in its heartbeats the application
// versions its registry holds (group.Config.Apps); the primary starts new
// sessions on, and migrates running sessions to, only versions every live
// member can materialize, so that whichever member takes over next can
// rebuild what this one published.

// liveHeartbeats is how many heartbeat periods a member stays live after
// its last heartbeat, for what the group can materialize (3 s with the
// default heartbeat, the window gateways mark members gone by). Generous:
// a member on an older build whose heartbeats a starved machine delays
// must not be taken for gone, and a migration can wait a few seconds for
// a member that has really left.
const liveHeartbeats = 6

// members returns what the live members of the group can materialize.
// Without a group (a node not yet joined) nothing constrains it.
func (n *Node) members() group.Versions {
	if n.member == nil {
		return group.Versions{Known: true}
	}
	hb := n.cfg.Group.Heartbeat
	if hb <= 0 {
		hb = group.DefaultHeartbeat
	}
	return n.member.Monitor().Versions(liveHeartbeats * hb)
}

// startVersion is the version of application name a new session starts
// on: the newest every live member can materialize. While that is not
// known (a group just joined), or no version is, it is the oldest this
// node holds, the one older builds most likely hold too; the session
// moves on at an interaction once the members are known.
func (n *Node) startVersion(name string) int {
	versions := n.eng.Registry().Versions(name)
	if len(versions) == 0 {
		return 0 // Start names the unknown application
	}
	m := n.members()
	for i := len(versions) - 1; i >= 0; i-- {
		if m.Can(name, versions[i]) {
			return versions[i]
		}
	}
	return versions[0]
}

// migrate moves a session an interaction has just advanced to the
// versions the registry's migrations lead to and every live member can
// materialize (model.Engine.Migrate), before it is published: a session
// migrates at its next interaction, after the input was applied at the
// version its page was rendered at. A migration that fails leaves the
// session as it is, on a version every node of the group still holds:
// the interaction goes on, and the failure is logged and counted.
func (n *Node) migrate(ctx context.Context, run *model.Run) *model.Run {
	m := n.members()
	next, ups, err := n.eng.Migrate(ctx, run, m.Can)
	if err != nil {
		n.met.migrations.WithLabelValues(run.Session().App, "failed").Inc()
		n.log.Error("session not migrated", "session", run.ID(), "err", err)
		next = run
	}
	for _, u := range ups {
		n.met.migrations.WithLabelValues(u.App, "migrated").Inc()
		n.log.Info("session migrated", "session", run.ID(), "app", u.App, "from", u.From, "to", u.To, "seq", next.Seq())
	}
	if m.Known {
		n.checkReadable(next.Session(), m)
	}
	return next
}

// checkReadable counts, and logs now and then, a session about to be
// published on a version a live member says it cannot materialize: no
// registered migration leads from it to one the member can. It is
// published all the same: refusing would turn a member on an older build
// into errors for this session's user now, where publishing risks them
// only if that member takes over.
func (n *Node) checkReadable(s *model.Session, m group.Versions) {
	for _, key := range s.Apps() {
		if m.Has(key) {
			continue
		}
		n.met.unreadable.WithLabelValues(key).Inc()
		if now := time.Now().UnixNano(); now-n.unreadableLogged.Load() > int64(10*time.Second) {
			n.unreadableLogged.Store(now)
			var lack []string
			for node, apps := range m.Members {
				if !slices.Contains(apps, key) {
					lack = append(lack, node)
				}
			}
			n.log.Warn("publishing a session on a version a live member cannot materialize, for want of a migration to one it can",
				"session", s.ID, "app", key, "members", strings.Join(lack, ","))
		}
	}
}
