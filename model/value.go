package model

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds of value a step's state can hold.
const (
	KindNull Kind = iota
	KindString
	KindInt
	KindDecimal
	KindBool
	KindTime
	KindBytes
	KindList
	KindMap
	KindRef
)

var kindNames = [...]string{"null", "string", "int", "decimal", "bool", "time", "bytes", "list", "map", "ref"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxDecimalScale is the largest number of digits after the decimal point a
// decimal value may carry; int64 holds 18 significant digits.
const MaxDecimalScale = 18

// Value is one typed parameter of a step's state. Values are immutable: the
// constructors copy what they are given and the accessors return copies, so a
// Value can be shared between a session and its clone.
//
// The zero Value is null.
type Value struct {
	kind  Kind
	scale uint8  // KindDecimal: digits after the point; KindString: 1 if not valid UTF-8
	nanos int32  // KindTime: nanoseconds within the second
	n     int64  // KindInt, KindDecimal (units), KindBool (0/1), KindTime (Unix seconds)
	s     string // KindString, KindBytes
	x     any    // KindList: []Value; KindMap: Params; KindRef: *Ref
}

// Null is the null value.
var Null = Value{}

// StringVal returns a string value. Whether s is valid UTF-8 is checked
// once, here: a session is encoded after every interaction, mostly with the
// same values, and an encoder refuses text that is not valid UTF-8.
func StringVal(s string) Value {
	v := Value{kind: KindString, s: s}
	if !utf8.ValidString(s) {
		v.scale = 1
	}
	return v
}

// ValidUTF8 reports whether a string value's text is valid UTF-8 (true for
// other kinds).
func (v Value) ValidUTF8() bool { return v.kind != KindString || v.scale == 0 }

// IntVal returns an integer value.
func IntVal(i int64) Value { return Value{kind: KindInt, n: i} }

// DecimalVal returns the decimal units×10^-scale: DecimalVal(1250, 2) is 12.50.
// Money and rates are decimals, never floats, so they survive a snapshot
// exactly. It panics if scale exceeds MaxDecimalScale.
func DecimalVal(units int64, scale uint8) Value {
	if scale > MaxDecimalScale {
		panic(fmt.Sprintf("model: decimal scale %d exceeds %d", scale, MaxDecimalScale))
	}
	return Value{kind: KindDecimal, n: units, scale: scale}
}

// BoolVal returns a boolean value.
func BoolVal(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.n = 1
	}
	return v
}

// TimeVal returns a time value. The instant is kept to the nanosecond; the
// location is not (times are held in UTC).
func TimeVal(t time.Time) Value {
	return Value{kind: KindTime, n: t.Unix(), nanos: int32(t.Nanosecond())}
}

// BytesVal returns a byte-string value holding a copy of b.
func BytesVal(b []byte) Value { return Value{kind: KindBytes, s: string(b)} }

// ListVal returns a list of the given values.
func ListVal(vs ...Value) Value { return Value{kind: KindList, x: slices.Clone(vs)} }

// MapVal returns a map value holding a copy of m.
func MapVal(m map[string]Value) Value { return Value{kind: KindMap, x: ParamsOf(m)} }

// MapOf returns a map value of the given entries, which must be in Params
// order (see Params). It panics if they are not: use MapVal for entries in
// no particular order.
func MapOf(ps Params) Value {
	if !ps.Sorted() {
		panic("model: MapOf: entries not in Params order")
	}
	return Value{kind: KindMap, x: slices.Clone(ps)}
}

// RefVal returns a canonical value: a logical reference to a database entity.
func RefVal(r Ref) Value { return Value{kind: KindRef, x: &r} }

func (v Value) list() []Value {
	l, _ := v.x.([]Value)
	return l
}

func (v Value) entries() Params {
	m, _ := v.x.(Params)
	return m
}

func (v Value) ref() *Ref {
	r, _ := v.x.(*Ref)
	return r
}

// Kind reports the value's kind.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Str returns the string held by a string value, or "".
func (v Value) Str() string {
	if v.kind != KindString {
		return ""
	}
	return v.s
}

// Int returns the integer held by an int value, or 0.
func (v Value) Int() int64 {
	if v.kind != KindInt {
		return 0
	}
	return v.n
}

// Decimal returns the units and scale of a decimal value (an int value is a
// decimal of scale 0), or 0, 0.
func (v Value) Decimal() (units int64, scale uint8) {
	switch v.kind {
	case KindDecimal:
		return v.n, v.scale
	case KindInt:
		return v.n, 0
	}
	return 0, 0
}

// Bool returns the boolean held by a bool value, or false.
func (v Value) Bool() bool { return v.kind == KindBool && v.n != 0 }

// Time returns the instant held by a time value in UTC, or the zero time.
func (v Value) Time() time.Time {
	if v.kind != KindTime {
		return time.Time{}
	}
	return time.Unix(v.n, int64(v.nanos)).UTC()
}

// Bytes returns a copy of the bytes held by a bytes value, or nil.
func (v Value) Bytes() []byte {
	if v.kind != KindBytes {
		return nil
	}
	return []byte(v.s)
}

// Len returns the number of elements of a list or map value, or 0.
func (v Value) Len() int {
	switch v.kind {
	case KindList:
		return len(v.list())
	case KindMap:
		return len(v.entries())
	}
	return 0
}

// List returns a copy of the elements of a list value, or nil.
func (v Value) List() []Value {
	if v.kind != KindList {
		return nil
	}
	return slices.Clone(v.list())
}

// Index returns element i of a list value, or null.
func (v Value) Index(i int) Value {
	l := v.list()
	if i < 0 || i >= len(l) {
		return Null
	}
	return l[i]
}

// Key returns the element named k of a map value, or null.
func (v Value) Key(k string) Value {
	x, _ := v.entries().Get(k)
	return x
}

// Keys returns the keys of a map value in sorted order.
func (v Value) Keys() []string {
	m := v.entries()
	ks := make([]string, len(m))
	for i, p := range m {
		ks[i] = p.Name
	}
	slices.Sort(ks)
	return ks
}

// Entries returns the elements of a map value in Params order (shorter
// names first). The caller must not modify them.
func (v Value) Entries() Params { return v.entries() }

// TimeParts returns a time value's Unix seconds and nanoseconds, the form in
// which it is stored.
func (v Value) TimeParts() (sec int64, nsec int32) {
	if v.kind != KindTime {
		return 0, 0
	}
	return v.n, v.nanos
}

// TimeFromParts returns the time value of Unix seconds and nanoseconds; nsec
// must be in [0, 1e9).
func TimeFromParts(sec int64, nsec int32) Value {
	return Value{kind: KindTime, n: sec, nanos: nsec}
}

// Ref returns the entity reference held by a canonical value.
func (v Value) Ref() (Ref, bool) {
	r := v.ref()
	if r == nil {
		return Ref{}, false
	}
	return *r, true
}

// Equal reports whether v and w hold the same kind and the same contents.
// Decimals compare by units and scale: 1.50 and 1.5 are different values.
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case KindNull:
		return true
	case KindString, KindBytes:
		return v.s == w.s // scale only caches a property of s
	case KindInt, KindBool:
		return v.n == w.n
	case KindDecimal:
		return v.n == w.n && v.scale == w.scale
	case KindTime:
		return v.n == w.n && v.nanos == w.nanos
	case KindList:
		return slices.EqualFunc(v.list(), w.list(), Value.Equal)
	case KindMap:
		return v.entries().Equal(w.entries())
	case KindRef:
		return *v.ref() == *w.ref()
	}
	return false
}

// String formats v for people: the form a page shows it in.
func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return ""
	case KindString:
		return v.s
	case KindInt:
		return strconv.FormatInt(v.n, 10)
	case KindDecimal:
		return FormatDecimal(v.n, v.scale)
	case KindBool:
		if v.n != 0 {
			return "yes"
		}
		return "no"
	case KindTime:
		t := v.Time()
		if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
			return t.Format(time.DateOnly)
		}
		return t.Format(time.RFC3339Nano)
	case KindBytes:
		return fmt.Sprintf("%d bytes", len(v.s))
	case KindList:
		parts := make([]string, len(v.list()))
		for i, x := range v.list() {
			parts[i] = x.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case KindMap:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, k := range v.Keys() {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v.Key(k).String())
		}
		b.WriteByte('}')
		return b.String()
	case KindRef:
		return v.ref().String()
	}
	return ""
}

// FormatDecimal formats units×10^-scale with exactly scale digits after the
// point.
func FormatDecimal(units int64, scale uint8) string {
	neg := units < 0
	var u uint64
	if neg {
		u = uint64(-(units + 1)) + 1 // no overflow at MinInt64
	} else {
		u = uint64(units)
	}
	digits := strconv.FormatUint(u, 10)
	if scale > 0 {
		if len(digits) <= int(scale) {
			digits = strings.Repeat("0", int(scale)-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-int(scale)] + "." + digits[len(digits)-int(scale):]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// ParseDecimal parses a decimal written with at most scale digits after the
// point ("12", "12.5", "-0.75") into units of 10^-scale.
func ParseDecimal(s string, scale uint8) (int64, error) {
	if scale > MaxDecimalScale {
		return 0, fmt.Errorf("decimal scale %d exceeds %d", scale, MaxDecimalScale)
	}
	s = strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	} else if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("not a number")
	}
	if len(frac) > int(scale) {
		return 0, fmt.Errorf("at most %d digits after the point", scale)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("not a number")
			}
		}
	}
	digits := whole + frac + strings.Repeat("0", int(scale)-len(frac))
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, nil
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || u > math.MaxInt64 {
		return 0, fmt.Errorf("too large")
	}
	if neg {
		return -int64(u), nil
	}
	return int64(u), nil
}

// walk calls fn on v and on every value nested in it, depth first, in a
// deterministic order.
func (v Value) walk(fn func(Value)) {
	fn(v)
	switch v.kind {
	case KindList:
		for _, x := range v.list() {
			x.walk(fn)
		}
	case KindMap:
		for _, p := range v.entries() {
			p.Value.walk(fn)
		}
	}
}

// mapRefs returns v with every reference replaced by f(ref). It copies only
// what changes.
func (v Value) mapRefs(f func(Ref) Ref) Value {
	switch v.kind {
	case KindRef:
		return RefVal(f(*v.ref()))
	case KindList:
		out := make([]Value, len(v.list()))
		for i, x := range v.list() {
			out[i] = x.mapRefs(f)
		}
		return Value{kind: KindList, x: out}
	case KindMap:
		return Value{kind: KindMap, x: v.entries().mapRefs(f)}
	}
	return v
}

// depth reports how deeply lists and maps nest in v (a scalar is 1).
func (v Value) depth() int {
	d := 0
	switch v.kind {
	case KindList:
		for _, x := range v.list() {
			d = max(d, x.depth())
		}
	case KindMap:
		for _, p := range v.entries() {
			d = max(d, p.Value.depth())
		}
	default:
		return 1
	}
	return d + 1
}
