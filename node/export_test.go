package node

import "understudy/group"

// Member is the node's group member, for tests that move the group
// between nodes at chosen moments.
func Member(n *Node) *group.Member { return n.member }

// TrackedSessions is how many sessions the node's publisher tracks.
func TrackedSessions(n *Node) int { return n.pub.Sessions() }
