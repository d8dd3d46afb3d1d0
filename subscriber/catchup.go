package subscriber

import (
	"context"
	"errors"
	"hash/maphash"

	"github.com/nats-io/nats.go/jetstream"
)

// A catch-up reads each session's newest message through a consumer with
// DeliverLastPerSubject. nats-server (seen with v2.15.2) can skip a message
// of such a consumer's first pass: when the pull request it was loaded for
// cannot take it (a request's byte budget is spent; a request that expired
// or lost its subscriber, as on a reconnect), the server steps back its
// stream sequence but not its list of last sequences, so the message is
// never delivered, and the consumer's pending count stays too high by one.
// A session skipped that way would be missing from the backup with nothing
// to show for it. So a catch-up counts the distinct subjects it was given
// and compares them with the stream's subject count; if any are missing,
// it lists the stream's subjects and reads the missing sessions from the
// stream leader. The subscriber also never asks for a byte budget, which
// makes the skip certain.

// startPoint is the stream when a catch-up's consumer was created: every
// message of the first pass is at or below lastSeq, and it should give
// one message of each of subjects subjects.
type startPoint struct {
	lastSeq  uint64
	subjects uint64
}

func readStartPoint(ctx context.Context, stream jetstream.Stream) (startPoint, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return startPoint{}, err
	}
	return startPoint{info.State.LastSeq, info.State.NumSubjects}, nil
}

// subjectSet is the set of subjects a catch-up was given, kept as 64-bit
// hashes: 100,000 sessions cost about 2 MB, for the catch-up only. Two
// subjects sharing a hash (about 1 in 10^10 for 100,000 subjects) would
// only hide a skipped one.
type subjectSet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
}

func newSubjectSet() *subjectSet {
	return &subjectSet{seed: maphash.MakeSeed(), m: make(map[uint64]struct{})}
}

func (ss *subjectSet) add(subject string) { ss.m[maphash.String(ss.seed, subject)] = struct{}{} }

func (ss *subjectSet) has(subject string) bool {
	_, ok := ss.m[maphash.String(ss.seed, subject)]
	return ok
}

func (ss *subjectSet) len() int { return len(ss.m) }

// missingSubjects returns the subjects on filter that the stream holds and
// seen does not, given that it was expected to hold want of them. It lists
// the stream's subjects (a large answer for many sessions) only when seen
// has fewer than want.
func missingSubjects(ctx context.Context, stream jetstream.Stream, filter string, seen *subjectSet, want uint64) ([]string, error) {
	if uint64(seen.len()) >= want {
		return nil, nil
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	var missing []string
	for subject := range info.State.Subjects {
		if !seen.has(subject) {
			missing = append(missing, subject)
		}
	}
	return missing, nil
}

// nextAfter returns the first message on filter after seq, read from the
// stream leader; nil if there is none.
func nextAfter(ctx context.Context, stream jetstream.Stream, filter string, seq uint64) (*jetstream.RawStreamMsg, error) {
	msg, err := stream.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return msg, err
}
