package group

import "understudy/group/protocol"

// Entry is the group's state in the key-value bucket; see protocol.Entry.
type Entry = protocol.Entry
