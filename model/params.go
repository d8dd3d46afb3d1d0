package model

import (
	"cmp"
	"slices"
)

// Param is one named value.
type Param struct {
	Name  string
	Value Value
}

// Params are a step's named values (and a map value's entries), kept sorted
// by name: a shorter name first, then bytewise. That is the order of the
// names' CBOR encodings, so a snapshot writes them without sorting and a
// decoder checks their order in one pass. A step holds a handful of values,
// for which a sorted slice is smaller and faster than a map.
type Params []Param

// CompareNames orders names the way Params keeps them.
func CompareNames(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// ParamsOf returns the entries of m as Params.
func ParamsOf(m map[string]Value) Params {
	if len(m) == 0 {
		return nil
	}
	ps := make(Params, 0, len(m))
	for k, v := range m {
		ps = append(ps, Param{k, v})
	}
	slices.SortFunc(ps, func(a, b Param) int { return CompareNames(a.Name, b.Name) })
	return ps
}

func (ps Params) find(name string) (int, bool) {
	if len(ps) <= 8 {
		for i, p := range ps {
			if c := CompareNames(p.Name, name); c >= 0 {
				return i, c == 0
			}
		}
		return len(ps), false
	}
	return slices.BinarySearchFunc(ps, name, func(p Param, n string) int { return CompareNames(p.Name, n) })
}

// Get returns the value named name.
func (ps Params) Get(name string) (Value, bool) {
	if i, ok := ps.find(name); ok {
		return ps[i].Value, true
	}
	return Null, false
}

// Set sets the value named name, keeping the order.
func (ps *Params) Set(name string, v Value) {
	i, ok := ps.find(name)
	if ok {
		(*ps)[i].Value = v
		return
	}
	*ps = slices.Insert(*ps, i, Param{name, v})
}

// Delete removes the value named name, if there is one.
func (ps *Params) Delete(name string) {
	if i, ok := ps.find(name); ok {
		*ps = slices.Delete(*ps, i, i+1)
	}
}

// Sorted reports whether ps is in order with no name twice: what a Params
// built by hand must be before it is encoded.
func (ps Params) Sorted() bool {
	for i := 1; i < len(ps); i++ {
		if CompareNames(ps[i-1].Name, ps[i].Name) >= 0 {
			return false
		}
	}
	return true
}

// Equal reports whether ps and o hold the same names and values.
func (ps Params) Equal(o Params) bool {
	return slices.EqualFunc(ps, o, func(a, b Param) bool { return a.Name == b.Name && a.Value.Equal(b.Value) })
}

// Map returns the values as a map value.
func (ps Params) Map() Value { return Value{kind: KindMap, x: slices.Clone(ps)} }

func (ps Params) mapRefs(f func(Ref) Ref) Params {
	out := make(Params, len(ps))
	for i, p := range ps {
		out[i] = Param{p.Name, p.Value.mapRefs(f)}
	}
	return out
}

func get(ps Params, name string) Value {
	v, _ := ps.Get(name)
	return v
}
