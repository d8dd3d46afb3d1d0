package broker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
)

// standaloneReply is the answer on Subjects.StandaloneSubject.
type standaloneReply struct {
	ServerID string `json:"server_id"`
}

// askTimeout bounds AskStandalone: the answer comes from a process on the
// same machine as the server, at once.
const askTimeout = time.Second

// StandaloneServer says whether it is a standalone server: *Embedded is
// one.
type StandaloneServer interface {
	Standalone() (serverID string, ok bool)
}

var _ StandaloneServer = (*Embedded)(nil)

// AnswerStandalone answers, on nc, the question AskStandalone asks: with
// srv's server id while it is a standalone server (Embedded.Standalone),
// and not at all otherwise. The process that embeds the server calls it
// (the gateway in the local deployment): it is the one that knows how the
// server is configured. The subscription lives until nc closes or it is
// unsubscribed.
func AnswerStandalone(nc *nats.Conn, subjects Subjects, srv StandaloneServer) (*nats.Subscription, error) {
	return nc.Subscribe(subjects.StandaloneSubject(), func(msg *nats.Msg) {
		id, ok := srv.Standalone()
		if !ok {
			return
		}
		data, _ := json.Marshal(standaloneReply{ServerID: id})
		msg.Respond(data)
	})
}

// AskStandalone reports whether the server nc is connected to says, through
// AnswerStandalone, that it is a standalone server. Only then does
// "no responders" on a node's control subject prove that node's
// connection gone: no reply, an unreadable one, or one naming another
// server is "not known to be standalone". A connection with a cluster
// name is never standalone.
func AskStandalone(ctx context.Context, nc *nats.Conn, subjects Subjects) bool {
	if nc.ConnectedClusterName() != "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subjects.StandaloneSubject(), nil)
	if err != nil {
		return false
	}
	var rep standaloneReply
	if json.Unmarshal(msg.Data, &rep) != nil {
		return false
	}
	return rep.ServerID != "" && rep.ServerID == nc.ConnectedServerId()
}
