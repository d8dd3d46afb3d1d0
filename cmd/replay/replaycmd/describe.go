package replaycmd

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"understudy/model"
)

// The step a session waits at, and the step tree, are read from the pools
// alone, so that list, tail and show work for sessions of applications the
// tool's registry does not hold (and for sessions that do not materialize).

// waiting returns where a session waits: the location of its waiting
// interactive step through calls ("payment/card/details"), or finished.
func waiting(s *model.Session) (loc string, finished bool, err error) {
	id, finished, err := waitingID(s)
	if err != nil || finished {
		return "", finished, err
	}
	return location(s, id), false, nil
}

// waitingID follows the cursors from the root to the waiting page.
func waitingID(s *model.Session) (model.StepID, bool, error) {
	if s.Finished() {
		return 0, true, nil
	}
	p := &s.Pool
	id := s.Root
	for range p.Len() + 1 {
		if c, ok := p.Composite[id]; ok {
			if c.Done || len(c.Children) == 0 {
				return 0, false, fmt.Errorf("step #%d (%s) is not running anything", id, location(s, id))
			}
			id = c.Children[len(c.Children)-1]
			continue
		}
		if a, ok := p.Application[id]; ok {
			if a.Root == 0 {
				return 0, false, fmt.Errorf("step #%d (%s) has not started its application", id, location(s, id))
			}
			id = a.Root
			continue
		}
		if i, ok := p.Interactive[id]; ok && !i.Done {
			return id, false, nil
		}
		return 0, false, fmt.Errorf("step #%d (%s) is not a waiting page", id, location(s, id))
	}
	return 0, false, fmt.Errorf("cycle in the step tree")
}

// location is a step's path as a user of the whole session sees it:
// through calls, "payment/card" for step "card" of the call "payment".
func location(s *model.Session, id model.StepID) string {
	p := &s.Pool
	loc := ""
	for range p.Len() + 1 {
		h, _ := p.Header(id)
		if h == nil {
			return loc
		}
		loc = joinPath(h.Path, loc)
		for h.Parent != 0 {
			if _, isCall := p.Application[h.Parent]; isCall {
				break
			}
			id = h.Parent
			if h, _ = p.Header(id); h == nil {
				return loc
			}
		}
		if h.Parent == 0 {
			return loc
		}
		id = h.Parent
	}
	return loc
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// stepInfo is one step instance, for the tree and for diffs.
type stepInfo struct {
	ID       model.StepID           `json:"id"`
	Kind     string                 `json:"kind"`
	Path     string                 `json:"path"`
	Location string                 `json:"location"`
	Parent   model.StepID           `json:"parent,omitempty"`
	Done     bool                   `json:"done"`
	Waiting  bool                   `json:"waiting,omitempty"`
	Params   map[string]model.Value `json:"params,omitempty"`
	Children []model.StepID         `json:"children,omitempty"`
	Calls    string                 `json:"calls,omitempty"` // application step: "payment@1"
	Root     model.StepID           `json:"root,omitempty"`  // application step: the callee's root
	Depth    int                    `json:"-"`
	params   model.Params
}

// steps lists a session's steps in tree order from the root (children
// after their parent), then any unreachable ones by id.
func steps(s *model.Session) []stepInfo {
	p := &s.Pool
	wait, _, _ := waitingID(s)
	var out []stepInfo
	seen := map[model.StepID]bool{}
	var walk func(id model.StepID, depth int)
	walk = func(id model.StepID, depth int) {
		if seen[id] {
			return
		}
		h, kind := p.Header(id)
		if h == nil {
			return
		}
		seen[id] = true
		si := stepInfo{ID: id, Kind: kind.String(), Path: h.Path, Location: location(s, id), Parent: h.Parent,
			Done: h.Done, Waiting: id == wait, Depth: depth, params: h.Params}
		if len(h.Params) > 0 {
			si.Params = map[string]model.Value{}
			for _, pr := range h.Params {
				si.Params[pr.Name] = pr.Value
			}
		}
		var next []model.StepID
		if c, ok := p.Composite[id]; ok {
			si.Children = slices.Clone(c.Children)
			next = c.Children
		}
		if a, ok := p.Application[id]; ok {
			if a.App != "" {
				si.Calls = a.App + "@" + strconv.Itoa(a.Version)
			}
			si.Root = a.Root
			if a.Root != 0 {
				next = []model.StepID{a.Root}
			}
		}
		out = append(out, si)
		for _, ch := range next {
			walk(ch, depth+1)
		}
	}
	walk(s.Root, 0)
	var rest []model.StepID
	for _, ids := range [][]model.StepID{keys(p.Composite), keys(p.Simple), keys(p.Interactive), keys(p.Application)} {
		for _, id := range ids {
			if !seen[id] {
				rest = append(rest, id)
			}
		}
	}
	slices.Sort(rest)
	for _, id := range rest {
		walk(id, 0)
	}
	return out
}

func keys[V any](m map[model.StepID]V) []model.StepID {
	out := make([]model.StepID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}

// viewResolver resolves entity references for a preview of the past: an
// entity that changed since the snapshot is shown as it is now but keeps
// the version the session referred to (so the session is not sent back
// to reselect it, as a node would do now), and one that cannot be resolved
// is shown by its reference. Each such case is noted.
type viewResolver struct {
	res model.Resolver // nil: every reference is shown by itself

	mu    sync.Mutex
	notes []string
}

var _ model.Resolver = (*viewResolver)(nil)

func (v *viewResolver) note(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(v.notes, n) {
		v.notes = append(v.notes, n)
	}
}

func (v *viewResolver) Notes() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.notes)
}

func (v *viewResolver) Resolve(ctx context.Context, ref model.Ref) (model.Entity, error) {
	if v.res != nil {
		e, err := v.res.Resolve(ctx, ref)
		if err == nil {
			now := e.EntityRef()
			if now.Version == ref.Version {
				return e, nil
			}
			if rec, ok := e.(*model.Record); ok {
				c := *rec
				c.Ref.Version = ref.Version
				v.note("entity %s has changed since this snapshot (now version %d): shown as it is now", ref, now.Version)
				return &c, nil
			}
			v.note("entity %s has changed since this snapshot (now version %d): its field's stale rule applies", ref, now.Version)
			return e, nil
		}
		v.note("entity %s: %v: shown by its reference", ref, err)
	}
	return &model.Record{Ref: ref, Label: ref.String()}, nil
}

func (v *viewResolver) Choices(ctx context.Context, entityType string) ([]model.Entity, error) {
	if v.res == nil {
		return nil, nil
	}
	return v.res.Choices(ctx, entityType)
}

// materialize rebuilds a session with the registry, entities resolved by
// res (nil: references stand for themselves). The notes say what was
// resolved differently from the snapshot's time.
func (e *env) materialize(ctx context.Context, s *model.Session, res model.Resolver) (*model.Engine, *model.Run, []string, error) {
	vr := &viewResolver{res: res}
	eng := model.NewEngine(e.cfg.Registry, vr)
	run, err := eng.Materialize(ctx, s)
	if err != nil {
		return nil, nil, vr.Notes(), err
	}
	for _, st := range run.Stale() {
		action := "reloaded"
		if st.Action == model.Reselect {
			action = "the user is sent back to choose again"
		}
		vr.note("entity %s at %s.%s changed to %s: %s", st.Old, st.Path, st.Param, st.New, action)
	}
	return eng, run, vr.Notes(), nil
}

// flatten turns a value into paths in State.Get's syntax
// ("drivers.0.name") and their scalar values. Empty lists and maps are
// left out.
func flatten(prefix string, v model.Value, out map[string]model.Value) {
	switch v.Kind() {
	case model.KindMap:
		for _, e := range v.Entries() {
			flatten(joinDot(prefix, e.Name), e.Value, out)
		}
	case model.KindList:
		for i := range v.Len() {
			flatten(joinDot(prefix, strconv.Itoa(i)), v.Index(i), out)
		}
	default:
		out[prefix] = v
	}
}

func joinDot(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// show formats a value for a person on one line: strings quoted, so that
// "" and a missing value, or "12" and 12, differ.
func show(v model.Value) string {
	switch v.Kind() {
	case model.KindString:
		return strconv.Quote(v.Str())
	case model.KindNull:
		return "null"
	case model.KindList:
		parts := make([]string, v.Len())
		for i := range v.Len() {
			parts[i] = show(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case model.KindMap:
		var parts []string
		for _, e := range v.Entries() {
			parts = append(parts, e.Name+": "+show(e.Value))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.String()
}

// writeValue writes a value as an indented tree.
func writeValue(b *strings.Builder, indent, name string, v model.Value) {
	switch v.Kind() {
	case model.KindMap:
		if v.Len() == 0 {
			fmt.Fprintf(b, "%s%s: {}\n", indent, name)
			return
		}
		fmt.Fprintf(b, "%s%s:\n", indent, name)
		for _, e := range v.Entries() {
			writeValue(b, indent+"  ", e.Name, e.Value)
		}
	case model.KindList:
		if v.Len() == 0 {
			fmt.Fprintf(b, "%s%s: []\n", indent, name)
			return
		}
		fmt.Fprintf(b, "%s%s:\n", indent, name)
		for i := range v.Len() {
			writeValue(b, indent+"  ", strconv.Itoa(i), v.Index(i))
		}
	default:
		fmt.Fprintf(b, "%s%s: %s\n", indent, name, show(v))
	}
}

// paramsText is a step's params on one line.
func paramsText(ps model.Params) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + "=" + show(p.Value)
	}
	return strings.Join(parts, " ")
}
