package demo

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"understudy/model"
)

// AppVersion2 is the quote's second version (QuoteV2).
const AppVersion2 = 2

// The demo's releases: the builds a node (-demo) or the replay tool runs.
// A rolling upgrade takes a group from one to the next while people are
// in the middle of their quotes.
const (
	// ReleaseV1 holds the first version of the quote (Registry).
	ReleaseV1 = "v1"
	// ReleaseV2 holds both versions and the migrations between them
	// (RegistryV2).
	ReleaseV2 = "v2"
)

// Releases lists the releases, oldest first.
var Releases = []string{ReleaseV1, ReleaseV2}

// Release returns the registry of the named release.
func Release(name string) (*model.Registry, error) {
	switch name {
	case ReleaseV1:
		return Registry(), nil
	case ReleaseV2:
		return RegistryV2(), nil
	}
	return nil, fmt.Errorf("demo release %q: want one of %s", name, strings.Join(Releases, ", "))
}

var quoteV2App = sync.OnceValue(func() *model.Application { return quoteV2(Quote()) })

// QuoteV2 returns version 2 of the quote. The insurer's new policy
// documents need the policyholder's given and family names apart, so the
// applicant page asks for them in two fields, "first" and "last", instead
// of "name"; every other step is version 1's, the very same definitions.
// Sessions started on version 1 move to version 2 through NameApart, and
// back through NameTogether. It is the same definition at every call.
func QuoteV2() *model.Application { return quoteV2App() }

func quoteV2(v1 *model.Application) *model.Application {
	root, _ := v1.Step("")
	var steps []model.Step
	for _, s := range root.(*model.CompositeStep).Steps() {
		if s.Name() == StepApplicant {
			s = applicantV2(s.(*model.InteractiveStep))
		}
		steps = append(steps, s)
	}
	return model.App(AppName, AppVersion2, steps...).Title(v1.Heading())
}

// applicantV2 is version 1's applicant page with the name in two fields.
func applicantV2(v1 *model.InteractiveStep) *model.InteractiveStep {
	var fields []*model.Field
	for _, f := range v1.Fields() {
		if f.Name() == "name" {
			fields = append(fields,
				model.Text("first").Label("Given names").Help("As they appear on your driving licence.").
					Required().MaxLen(60),
				model.Text("last").Label("Family name").Required().MaxLen(60))
			continue
		}
		fields = append(fields, f)
	}
	return model.Interactive(StepApplicant, fields...).Title(v1.Heading()).
		Intro("Let's start with the person taking out the policy. We now ask for your given and family names apart, as they go on your policy documents.")
}

// RegistryV2 returns the registry of the demo's second release: what
// Registry holds, version 2 of the quote beside version 1, and the
// migrations between them. New sessions start on version 2 once every
// member of the group runs this release; a running session moves to it at
// its next interaction, and back to version 1 while a member of the first
// release is in the group again.
func RegistryV2() *model.Registry {
	return Registry().
		MustMigrate(Quote(), QuoteV2(), NameApart).
		MustMigrate(QuoteV2(), Quote(), NameTogether)
}

// NameApart migrates a quote from version 1 to version 2: the applicant's
// name becomes given names and family name, split at its last space ("Karen
// Spärck Jones" gives "Karen Spärck" and "Jones"; a name of one word is a
// family name). It is a guess a person may correct by going back, and
// NameTogether undoes it exactly.
func NameApart(in *model.Instance) error {
	for _, a := range in.Steps(StepApplicant) {
		name, ok := a.Params.Get("name")
		if !ok {
			continue // not answered yet: the page of version 2 asks
		}
		if name.Kind() != model.KindString {
			return fmt.Errorf("applicant name is a %s", name.Kind())
		}
		first, last := SplitName(name.Str())
		a.Params.Delete("name")
		a.Params.Set("first", model.StringVal(first))
		a.Params.Set("last", model.StringVal(last))
	}
	return nil
}

// NameTogether migrates a quote from version 2 back to version 1: given
// names and family name joined by a space.
func NameTogether(in *model.Instance) error {
	for _, a := range in.Steps(StepApplicant) {
		first, ok1 := a.Params.Get("first")
		last, ok2 := a.Params.Get("last")
		if !ok1 && !ok2 {
			continue
		}
		a.Params.Delete("first")
		a.Params.Delete("last")
		a.Params.Set("name", model.StringVal(JoinName(first.Str(), last.Str())))
	}
	return nil
}

// SplitName splits a full name at its last space, after trimming it.
func SplitName(name string) (first, last string) {
	name = strings.TrimSpace(name)
	if i := strings.LastIndexByte(name, ' '); i >= 0 {
		return strings.TrimSpace(name[:i]), name[i+1:]
	}
	return "", name
}

// JoinName is the inverse of SplitName.
func JoinName(first, last string) string {
	return strings.TrimSpace(strings.Join(slices.DeleteFunc([]string{first, last}, func(s string) bool { return s == "" }), " "))
}
