// Package bugs holds the switches that reintroduce defects a review found
// and that were fixed, one switch each, so that the simulator and the
// chaos suite can show they find them: a checker is evidence only once it
// has failed. Every package that once had one of these defects takes a
// Set in its configuration and honours the switches that concern it. The
// zero Set is production; nothing outside tests sets one.
package bugs

import (
	"fmt"
	"reflect"
	"strings"
)

// Set is a set of planted bugs.
type Set struct {
	// AnswerAnyEpoch: the answer rule checks the lease only, not that the
	// interaction was applied at the current epoch (defect 1: a node that
	// lost the group and won it back answers an interaction whose snapshot
	// is fenced). Protocol core.
	AnswerAnyEpoch bool
	// LeaseFromRetry: a write that landed counts the lease from the send
	// time of its last attempt instead of its first (defect 2: two
	// primaries). Protocol core.
	LeaseFromRetry bool
	// ForgetAfterRefusal: after an acknowledged publish whose answer the
	// answer rule refuses, the node's copy stays behind the stream (defect
	// 3: a retry is applied twice). Node.
	ForgetAfterRefusal bool
	// QuarantineTransient: a read that failed for a passing reason (a
	// timeout, no leader) quarantines the session (defect 4). Subscriber.
	QuarantineTransient bool
	// LooseRelease: a release that conflicts with the member's own renewal
	// counts as landed, judged by owner, epoch and fence only (defect 5).
	// Protocol core.
	LooseRelease bool
	// FencedIsAbsent: a session whose newest copy is fenced counts as no
	// session (defect 6: "410 your session has ended" for a live
	// session). Subscriber.
	FencedIsAbsent bool
	// AnswerBeforeAck: the node answers before its publish is
	// acknowledged. Node.
	AnswerBeforeAck bool
	// NoExpectedSeq: the node publishes without the expected last subject
	// sequence, so a stale primary overwrites a newer one. Publisher.
	NoExpectedSeq bool
	// FenceBeforeRelease: a takeover whose owner released the group
	// meanwhile claims with the stream sequence it read before the
	// release, fencing the owner's last snapshots (found by the
	// simulator). Protocol core.
	FenceBeforeRelease bool
	// WaitPrunedClaim: a takeover whose claim can no longer land waits
	// for a retry that is never sent, until its deadline (found by the
	// simulator). Protocol core.
	WaitPrunedClaim bool
	// PausedCopyNoOwn: a primary's paused copy of the stream is not handed
	// what the node stores, and a session it does not hold counts as no
	// session even when a client holds it: a primary that lost a session's
	// memory (fenced by a newer owner it has not heard of) answers "410 your
	// session has ended" for it. Node.
	PausedCopyNoOwn bool
}

// Names returns the names of the switches, in order.
func Names() []string {
	t := reflect.TypeOf(Set{})
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Name
	}
	return names
}

// Parse returns the Set with the named switches on: a comma-separated
// list of names (case-insensitive), "" for none.
func Parse(list string) (Set, error) {
	var s Set
	v := reflect.ValueOf(&s).Elem()
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		f := v.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, name) })
		if !f.IsValid() {
			return Set{}, fmt.Errorf("planted bug %q: want one of %s", name, strings.Join(Names(), ", "))
		}
		f.SetBool(true)
	}
	return s, nil
}

// String lists the switches that are on, "none" if none.
func (s Set) String() string {
	v := reflect.ValueOf(s)
	var on []string
	for i, n := range Names() {
		if v.Field(i).Bool() {
			on = append(on, n)
		}
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, ",")
}
