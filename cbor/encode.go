package cbor

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"understudy/model"
)

// FormatVersion is the snapshot format this package writes.
const FormatVersion = 1

// Tags the format uses.
const (
	TagDecimal   = 4     // RFC 8949 decimal fraction [exponent, mantissa]
	TagTime      = 1001  // RFC 9581 extended time {1: seconds, -9: nanoseconds}
	TagEntityRef = 48879 // understudy entity reference [type, id, version]
)

// CBOR major types.
const (
	majUint   = 0
	majNint   = 1
	majBytes  = 2
	majText   = 3
	majArray  = 4
	majMap    = 5
	majTag    = 6
	majSimple = 7
)

const (
	simpleFalse = 0xf4
	simpleTrue  = 0xf5
	simpleNull  = 0xf6
)

// Encoder encodes sessions, reusing its buffers between calls. It is not
// safe for concurrent use; Marshal keeps a pool of them.
type Encoder struct {
	b    []byte
	ids  []model.StepID
	bits []uint64              // a set of step ids, reused by ordered
	keys map[appVersion]string // "name@version" of the applications seen
	apps []string
	err  error
}

type appVersion struct {
	name    string
	version int
}

// NewEncoder returns an encoder.
func NewEncoder() *Encoder { return &Encoder{b: make([]byte, 0, 8192)} }

var encoders = sync.Pool{New: func() any { return NewEncoder() }}

// Marshal returns the snapshot of s in a new slice.
func Marshal(s *model.Session) ([]byte, error) {
	e := encoders.Get().(*Encoder)
	defer encoders.Put(e)
	b, err := e.Encode(s)
	if err != nil {
		return nil, err
	}
	return slices.Clone(b), nil
}

// Encode returns the snapshot of s. The slice is the encoder's buffer: it is
// valid until the next call.
func (e *Encoder) Encode(s *model.Session) ([]byte, error) {
	e.b, e.err = e.b[:0], nil
	p := &s.Pool
	e.arrayHead(16)
	e.uint(FormatVersion)
	e.text(string(s.ID))
	e.uint(s.Epoch)
	e.uint(s.Seq)
	e.text(s.Node)
	e.time(s.Updated.Unix(), int32(s.Updated.Nanosecond()))
	apps := e.appKeys(s)
	e.arrayHead(len(apps))
	for _, a := range apps {
		e.text(a)
	}
	e.time(s.Created.Unix(), int32(s.Created.Nanosecond()))
	e.text(s.App)
	e.int(int64(s.Version))
	e.uint(uint64(s.Root))
	e.uint(uint64(s.NextID))

	e.mapHead(len(p.Composite))
	for _, id := range ordered(e, p.Composite, s.NextID) {
		st := p.Composite[id]
		e.uint(uint64(id))
		e.arrayHead(5)
		e.header(&st.StepState)
		e.arrayHead(len(st.Children))
		for _, c := range st.Children {
			e.uint(uint64(c))
		}
	}
	e.mapHead(len(p.Simple))
	for _, id := range ordered(e, p.Simple, s.NextID) {
		e.uint(uint64(id))
		e.arrayHead(4)
		e.header(&p.Simple[id].StepState)
	}
	e.mapHead(len(p.Interactive))
	for _, id := range ordered(e, p.Interactive, s.NextID) {
		e.uint(uint64(id))
		e.arrayHead(4)
		e.header(&p.Interactive[id].StepState)
	}
	e.mapHead(len(p.Application))
	for _, id := range ordered(e, p.Application, s.NextID) {
		st := p.Application[id]
		e.uint(uint64(id))
		e.arrayHead(7)
		e.header(&st.StepState)
		e.text(st.App)
		e.int(int64(st.Version))
		e.uint(uint64(st.Root))
	}
	if e.err != nil {
		return nil, fmt.Errorf("session %s: %w: %w", s.ID, ErrEncode, e.err)
	}
	return e.b, nil
}

// ordered returns the ids of a pool table in ascending order, which is
// also the deterministic order of their encodings. Step ids are small
// (below the session's NextID), so they go into a bit set and come out in
// order, with no sort: a primary encodes after every interaction. An id at
// or above next (a session built by hand) falls back to a sort.
func ordered[V any](e *Encoder, m map[model.StepID]V, next model.StepID) []model.StepID {
	e.ids = e.ids[:0]
	words := (int(next) + 63) / 64
	if cap(e.bits) < words {
		e.bits = make([]uint64, words)
	}
	set := e.bits[:words]
	clear(set)
	overflow := false
	for id := range m {
		if id >= next {
			overflow = true
			break
		}
		set[id/64] |= 1 << (id % 64)
	}
	if overflow {
		for id := range m {
			e.ids = append(e.ids, id)
		}
		slices.Sort(e.ids)
		return e.ids
	}
	for w, word := range set {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			e.ids = append(e.ids, model.StepID(w*64+b))
			word &= word - 1
		}
	}
	return e.ids
}

// appKeys returns s.Apps(), the sorted keys of the application versions
// the session runs, with their strings built once per encoder.
func (e *Encoder) appKeys(s *model.Session) []string {
	e.apps = append(e.apps[:0], e.appKey(s.App, s.Version))
	for _, a := range s.Pool.Application {
		if a.Root != 0 {
			if k := e.appKey(a.App, a.Version); !slices.Contains(e.apps, k) {
				e.apps = append(e.apps, k)
			}
		}
	}
	slices.Sort(e.apps)
	return e.apps
}

func (e *Encoder) appKey(name string, version int) string {
	av := appVersion{name, version}
	k, ok := e.keys[av]
	if !ok {
		if e.keys == nil || len(e.keys) > 1024 {
			e.keys = map[appVersion]string{} // bounded: a registry has a few
		}
		k = model.AppKey(name, version)
		e.keys[av] = k
	}
	return k
}

func (e *Encoder) header(h *model.StepState) {
	e.text(h.Path)
	e.uint(uint64(h.Parent))
	e.bool(h.Done)
	e.params(h.Params)
}

// params writes named values. model.Params keeps them in the order of their
// encodings (a shorter name first, then bytewise), which is the
// deterministic order; Params built out of order by hand are refused.
func (e *Encoder) params(ps model.Params) {
	e.mapHead(len(ps))
	for i, p := range ps {
		if i > 0 && model.CompareNames(ps[i-1].Name, p.Name) >= 0 {
			e.setErr(fmt.Errorf("params %q and %q out of order", truncate(ps[i-1].Name, 32), truncate(p.Name, 32)))
		}
		e.text(p.Name)
		e.value(p.Value)
	}
}

func (e *Encoder) value(v model.Value) {
	switch v.Kind() {
	case model.KindNull:
		e.b = append(e.b, simpleNull)
	case model.KindString:
		// Checked once when the value was made; names and paths are
		// checked here.
		if !v.ValidUTF8() {
			e.setErr(fmt.Errorf("invalid UTF-8 in %s", strconv.QuoteToASCII(truncate(v.Str(), 32))))
		}
		e.head(majText, uint64(len(v.Str())))
		e.b = append(e.b, v.Str()...)
	case model.KindInt:
		e.int(v.Int())
	case model.KindDecimal:
		units, scale := v.Decimal()
		e.tag(TagDecimal)
		e.arrayHead(2)
		e.int(-int64(scale))
		e.int(units)
	case model.KindBool:
		e.bool(v.Bool())
	case model.KindTime:
		e.time(v.TimeParts())
	case model.KindBytes:
		b := v.Bytes()
		e.head(majBytes, uint64(len(b)))
		e.b = append(e.b, b...)
	case model.KindList:
		e.arrayHead(v.Len())
		for i := range v.Len() {
			e.value(v.Index(i))
		}
	case model.KindMap:
		e.params(v.Entries())
	case model.KindRef:
		r, _ := v.Ref()
		e.tag(TagEntityRef)
		e.arrayHead(3)
		e.text(r.Type)
		e.text(r.ID)
		e.uint(r.Version)
	default:
		e.setErr(fmt.Errorf("value of kind %s", v.Kind()))
	}
}

func (e *Encoder) time(sec int64, nsec int32) {
	e.tag(TagTime)
	if nsec == 0 {
		e.mapHead(1)
		e.b = append(e.b, 0x01)
		e.int(sec)
		return
	}
	e.mapHead(2)
	e.b = append(e.b, 0x01)
	e.int(sec)
	e.b = append(e.b, 0x28) // -9
	e.int(int64(nsec))
}

func (e *Encoder) setErr(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *Encoder) text(s string) {
	if !utf8.ValidString(s) {
		e.setErr(fmt.Errorf("invalid UTF-8 in %s", strconv.QuoteToASCII(truncate(s, 32))))
	}
	e.head(majText, uint64(len(s)))
	e.b = append(e.b, s...)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (e *Encoder) bool(b bool) {
	if b {
		e.b = append(e.b, simpleTrue)
	} else {
		e.b = append(e.b, simpleFalse)
	}
}

func (e *Encoder) int(i int64) {
	if i >= 0 {
		e.head(majUint, uint64(i))
	} else {
		e.head(majNint, uint64(-(i + 1)))
	}
}

func (e *Encoder) uint(u uint64)   { e.head(majUint, u) }
func (e *Encoder) tag(t uint64)    { e.head(majTag, t) }
func (e *Encoder) arrayHead(n int) { e.head(majArray, uint64(n)) }
func (e *Encoder) mapHead(n int)   { e.head(majMap, uint64(n)) }

// head writes a major type and argument in the shortest form.
func (e *Encoder) head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		e.b = append(e.b, m|byte(n))
	case n <= 0xff:
		e.b = append(e.b, m|24, byte(n))
	case n <= 0xffff:
		e.b = append(e.b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		e.b = append(e.b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		e.b = append(e.b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
