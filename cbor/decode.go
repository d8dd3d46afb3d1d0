package cbor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"understudy/model"
)

// Decode reads a snapshot with the default limits.
func Decode(data []byte) (*model.Session, error) {
	return DecodeLimits(data, DefaultLimits)
}

// DecodeLimits reads a snapshot, refusing anything outside lim (zero fields
// take the defaults). See the package documentation for what it rejects.
func DecodeLimits(data []byte, lim Limits) (s *model.Session, err error) {
	d := decoder{data: data, lim: lim.orDefault(), names: namePool.Get().(map[string]string)}
	defer func() {
		clear(d.names)
		namePool.Put(d.names)
		// A decoder bug must not take down a node serving other sessions.
		if p := recover(); p != nil {
			s, err = nil, d.fail(fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p))
		}
	}()
	if len(data) > d.lim.MaxBytes {
		return nil, d.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), d.lim.MaxBytes))
	}
	s, err = d.session()
	if err != nil {
		return nil, err
	}
	if d.off != len(data) {
		return nil, d.fail(fmt.Errorf("%w: %d bytes after the snapshot", ErrMalformed, len(data)-d.off))
	}
	return s, nil
}

// Envelope is the part of a snapshot a tool can read without decoding the
// session: who wrote which interaction of which session, when, with which
// applications.
type Envelope struct {
	Format  uint64
	Session model.SessionID
	Epoch   uint64
	Seq     uint64
	Node    string
	Time    time.Time
	Apps    []string // "name@version", sorted
}

// PeekEnvelope reads the envelope of a snapshot.
func PeekEnvelope(data []byte) (Envelope, error) {
	d := decoder{data: data, lim: DefaultLimits}
	if len(data) > d.lim.MaxBytes {
		return Envelope{}, d.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), d.lim.MaxBytes))
	}
	return d.envelope()
}

type frame struct {
	what string
	id   uint64
	key  string
}

type decoder struct {
	data   []byte
	off    int
	lim    Limits
	id     model.SessionID
	frames []frame
	names  map[string]string // interned paths and keys: they repeat in every step
}

var namePool = sync.Pool{New: func() any { return make(map[string]string, 64) }}

// name reads a text string that is likely to repeat (a step path, a param
// key) and returns one shared copy of each distinct value.
func (d *decoder) name(what string) (string, error) {
	b, err := d.rawText(what)
	if err != nil {
		return "", err
	}
	return d.intern(b), nil
}

func (d *decoder) intern(b []byte) string {
	if d.names == nil {
		return string(b)
	}
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= 64 && len(d.names) < 512 {
		d.names[s] = s
	}
	return s
}

func (d *decoder) fail(err error) error {
	var where []string
	for _, f := range d.frames {
		w := f.what
		if f.key != "" {
			w = "param " + strconv.Quote(truncate(f.key, 32))
		} else if f.what != "" && f.what[len(f.what)-1] == '#' {
			w += strconv.FormatUint(f.id, 10)
		}
		where = append(where, w)
	}
	return &DecodeError{Session: d.id, Where: strings.Join(where, " "), Offset: d.off, Err: err}
}

func (d *decoder) push(what string, id uint64, key string) {
	d.frames = append(d.frames, frame{what, id, key})
}

func (d *decoder) pop() { d.frames = d.frames[:len(d.frames)-1] }

// head reads a data item's head: its major type and argument. It rejects
// indefinite lengths, reserved values and arguments longer than needed.
func (d *decoder) head() (major byte, arg uint64, err error) {
	if d.off >= len(d.data) {
		return 0, 0, d.fail(ErrTruncated)
	}
	ib := d.data[d.off]
	major, ai := ib>>5, ib&0x1f
	switch {
	case ai < 24:
		d.off++
		return major, uint64(ai), nil
	case ai == 31:
		return 0, 0, d.fail(fmt.Errorf("%w: indefinite length", ErrNonCanonical))
	case ai > 27:
		return 0, 0, d.fail(fmt.Errorf("%w: reserved additional information %d", ErrMalformed, ai))
	}
	n := 1 << (ai - 24)
	if len(d.data)-d.off-1 < n {
		return 0, 0, d.fail(ErrTruncated)
	}
	p := d.data[d.off+1 : d.off+1+n]
	var min uint64
	switch n {
	case 1:
		arg, min = uint64(p[0]), 24
	case 2:
		arg, min = uint64(binary.BigEndian.Uint16(p)), 0x100
	case 4:
		arg, min = uint64(binary.BigEndian.Uint32(p)), 0x10000
	case 8:
		arg, min = binary.BigEndian.Uint64(p), 0x100000000
	}
	if major == majSimple {
		return 0, 0, d.fail(fmt.Errorf("%w: float or extended simple value", ErrMalformed))
	}
	if arg < min {
		return 0, 0, d.fail(fmt.Errorf("%w: %d-byte argument %d", ErrNonCanonical, n, arg))
	}
	d.off += 1 + n
	return major, arg, nil
}

func (d *decoder) expect(want byte, what string) (uint64, error) {
	start := d.off
	major, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	if major != want {
		d.off = start
		return 0, d.fail(fmt.Errorf("%w: %s is major type %d, want %d", ErrMalformed, what, major, want))
	}
	return arg, nil
}

// count reads an array or map head and checks its length against the limit
// and against the bytes left (each item takes at least one byte), before
// anything is allocated for it.
func (d *decoder) count(major byte, what string) (int, error) {
	n, err := d.expect(major, what)
	if err != nil {
		return 0, err
	}
	per := uint64(1)
	if major == majMap {
		per = 2
	}
	if n > uint64(d.lim.MaxItems) {
		return 0, d.fail(fmt.Errorf("%w: %s of %d items, limit %d", ErrTooLarge, what, n, d.lim.MaxItems))
	}
	if n*per > uint64(len(d.data)-d.off) {
		return 0, d.fail(fmt.Errorf("%w: %s declares %d items, %d bytes left", ErrTruncated, what, n, len(d.data)-d.off))
	}
	return int(n), nil
}

func (d *decoder) arrayOf(n int, what string) error {
	got, err := d.count(majArray, what)
	if err != nil {
		return err
	}
	if got != n {
		return d.fail(fmt.Errorf("%w: %s of %d elements, want %d", ErrMalformed, what, got, n))
	}
	return nil
}

func (d *decoder) uint(what string) (uint64, error) { return d.expect(majUint, what) }

func (d *decoder) uint32(what string) (uint32, error) {
	u, err := d.uint(what)
	if err == nil && u > math.MaxUint32 {
		return 0, d.fail(fmt.Errorf("%w: %s %d out of range", ErrMalformed, what, u))
	}
	return uint32(u), err
}

func (d *decoder) int() (int64, error) {
	start := d.off
	major, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	switch {
	case major == majUint && arg <= math.MaxInt64:
		return int64(arg), nil
	case major == majNint && arg <= math.MaxInt64:
		return -1 - int64(arg), nil
	case major == majUint || major == majNint:
		return 0, d.fail(fmt.Errorf("%w: integer out of int64 range", ErrMalformed))
	}
	d.off = start
	return 0, d.fail(fmt.Errorf("%w: major type %d, want an integer", ErrMalformed, major))
}

// rawText reads a text string's bytes without copying them.
func (d *decoder) rawText(what string) ([]byte, error) {
	n, err := d.expect(majText, what)
	if err != nil {
		return nil, err
	}
	return d.payload(n)
}

func (d *decoder) payload(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.off) {
		return nil, d.fail(fmt.Errorf("%w: string of %d bytes, %d left", ErrTruncated, n, len(d.data)-d.off))
	}
	b := d.data[d.off : d.off+int(n)]
	if !utf8.Valid(b) {
		return nil, d.fail(fmt.Errorf("%w: invalid UTF-8", ErrMalformed))
	}
	d.off += int(n)
	return b, nil
}

func (d *decoder) text(what string) (string, error) {
	b, err := d.rawText(what)
	return string(b), err
}

func (d *decoder) bool(what string) (bool, error) {
	if d.off >= len(d.data) {
		return false, d.fail(ErrTruncated)
	}
	switch d.data[d.off] {
	case simpleFalse:
		d.off++
		return false, nil
	case simpleTrue:
		d.off++
		return true, nil
	}
	return false, d.fail(fmt.Errorf("%w: %s is not a boolean", ErrMalformed, what))
}

func (d *decoder) envelope() (Envelope, error) {
	var env Envelope
	n, err := d.count(majArray, "snapshot")
	if err != nil {
		return env, err
	}
	if env.Format, err = d.uint("format version"); err != nil {
		return env, err
	}
	if env.Format != FormatVersion {
		return env, d.fail(fmt.Errorf("%w: %d", ErrFormat, env.Format))
	}
	if n != 16 {
		return env, d.fail(fmt.Errorf("%w: snapshot of %d elements, want 16", ErrMalformed, n))
	}
	id, err := d.text("session id")
	if err != nil {
		return env, err
	}
	if env.Session, err = model.ParseSessionID(id); err != nil {
		return env, d.fail(fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	d.id = env.Session
	if env.Epoch, err = d.uint("epoch"); err != nil {
		return env, err
	}
	if env.Seq, err = d.uint("seq"); err != nil {
		return env, err
	}
	if env.Node, err = d.text("node"); err != nil {
		return env, err
	}
	if env.Time, err = d.timeValue(); err != nil {
		return env, err
	}
	napps, err := d.count(majArray, "application versions")
	if err != nil {
		return env, err
	}
	env.Apps = make([]string, napps)
	for i := range env.Apps {
		if env.Apps[i], err = d.text("application version"); err != nil {
			return env, err
		}
	}
	return env, nil
}

func (d *decoder) timeValue() (time.Time, error) {
	if _, err := d.tagged(TagTime); err != nil {
		return time.Time{}, err
	}
	sec, nsec, err := d.timeBody()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(sec, int64(nsec)).UTC(), nil
}

func (d *decoder) tagged(want uint64) (uint64, error) {
	t, err := d.expect(majTag, "time")
	if err != nil {
		return 0, err
	}
	if t != want {
		return 0, d.fail(fmt.Errorf("%w: %d", ErrUnknownTag, t))
	}
	return t, nil
}

// timeBody reads the map of an RFC 9581 time: {1: seconds} or
// {1: seconds, -9: nanoseconds} with nanoseconds in [1, 1e9).
func (d *decoder) timeBody() (int64, int32, error) {
	n, err := d.count(majMap, "time")
	if err != nil {
		return 0, 0, err
	}
	if n != 1 && n != 2 {
		return 0, 0, d.fail(fmt.Errorf("%w: time map of %d entries", ErrMalformed, n))
	}
	if k, err := d.int(); err != nil || k != 1 {
		if err == nil {
			err = d.fail(fmt.Errorf("%w: time key %d, want 1", ErrMalformed, k))
		}
		return 0, 0, err
	}
	sec, err := d.int()
	if err != nil {
		return 0, 0, err
	}
	if n == 1 {
		return sec, 0, nil
	}
	if k, err := d.int(); err != nil || k != -9 {
		if err == nil {
			err = d.fail(fmt.Errorf("%w: time key %d, want -9", ErrMalformed, k))
		}
		return 0, 0, err
	}
	nsec, err := d.int()
	if err != nil {
		return 0, 0, err
	}
	if nsec < 1 || nsec >= 1e9 {
		return 0, 0, d.fail(fmt.Errorf("%w: %d nanoseconds", ErrMalformed, nsec))
	}
	return sec, int32(nsec), nil
}

func (d *decoder) session() (*model.Session, error) {
	env, err := d.envelope()
	if err != nil {
		return nil, err
	}
	s := &model.Session{ID: env.Session, Epoch: env.Epoch, Seq: env.Seq, Node: env.Node, Updated: env.Time}
	if s.Created, err = d.timeValue(); err != nil {
		return nil, err
	}
	if s.App, err = d.text("application"); err != nil {
		return nil, err
	}
	if s.Version, err = d.version(); err != nil {
		return nil, err
	}
	root, err := d.uint32("root")
	if err != nil {
		return nil, err
	}
	next, err := d.uint32("next step id")
	if err != nil {
		return nil, err
	}
	s.Root, s.NextID = model.StepID(root), model.StepID(next)
	s.Pool = model.Pool{}
	steps := 0
	if err := d.table("composite", &steps, func(id model.StepID) error {
		st := &model.CompositeState{}
		if err := d.record(5, &st.StepState); err != nil {
			return err
		}
		n, err := d.count(majArray, "children")
		if err != nil {
			return err
		}
		st.Children = make([]model.StepID, n)
		for i := range st.Children {
			c, err := d.uint32("child")
			if err != nil {
				return err
			}
			st.Children[i] = model.StepID(c)
		}
		s.Pool.Composite[id] = st
		return nil
	}, func(n int) { s.Pool.Composite = make(map[model.StepID]*model.CompositeState, n) }); err != nil {
		return nil, err
	}
	if err := d.table("simple", &steps, func(id model.StepID) error {
		st := &model.SimpleState{}
		s.Pool.Simple[id] = st
		return d.record(4, &st.StepState)
	}, func(n int) { s.Pool.Simple = make(map[model.StepID]*model.SimpleState, n) }); err != nil {
		return nil, err
	}
	if err := d.table("interactive", &steps, func(id model.StepID) error {
		st := &model.InteractiveState{}
		s.Pool.Interactive[id] = st
		return d.record(4, &st.StepState)
	}, func(n int) { s.Pool.Interactive = make(map[model.StepID]*model.InteractiveState, n) }); err != nil {
		return nil, err
	}
	if err := d.table("application", &steps, func(id model.StepID) error {
		st := &model.ApplicationState{}
		if err := d.record(7, &st.StepState); err != nil {
			return err
		}
		var err error
		if st.App, err = d.name("called application"); err != nil {
			return err
		}
		if st.Version, err = d.version(); err != nil {
			return err
		}
		root, err := d.uint32("called root")
		st.Root = model.StepID(root)
		s.Pool.Application[id] = st
		return err
	}, func(n int) { s.Pool.Application = make(map[model.StepID]*model.ApplicationState, n) }); err != nil {
		return nil, err
	}
	// The envelope's application versions must be the session's: tools
	// trust them without decoding the pools.
	if apps := s.Apps(); !equalStrings(apps, env.Apps) {
		return nil, d.fail(fmt.Errorf("%w: envelope names applications %v, session runs %v", ErrMalformed, env.Apps, apps))
	}
	return s, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (d *decoder) version() (int, error) {
	v, err := d.uint("version")
	if err == nil && (v < 1 || v > math.MaxInt32) {
		return 0, d.fail(fmt.Errorf("%w: version %d", ErrMalformed, v))
	}
	return int(v), err
}

// table reads one pool table: a map from step id, in ascending order, to a
// record. A step id may appear in only one table.
func (d *decoder) table(name string, steps *int, rec func(model.StepID) error, alloc func(int)) error {
	n, err := d.count(majMap, name+" pool")
	if err != nil {
		return err
	}
	if *steps += n; *steps > d.lim.MaxSteps {
		return d.fail(fmt.Errorf("%w: more than %d steps", ErrTooLarge, d.lim.MaxSteps))
	}
	alloc(n)
	d.push(name+" #", 0, "")
	defer d.pop()
	var last uint64
	for i := range n {
		id, err := d.uint32("step id")
		if err != nil {
			return err
		}
		if i > 0 && uint64(id) <= last {
			if uint64(id) == last {
				return d.fail(fmt.Errorf("%w: step id %d", ErrDuplicateKey, id))
			}
			return d.fail(fmt.Errorf("%w: step id %d after %d", ErrNonCanonical, id, last))
		}
		last = uint64(id)
		d.frames[len(d.frames)-1].id = uint64(id)
		if err := rec(model.StepID(id)); err != nil {
			return err
		}
	}
	return nil
}

// record reads [path, parent, done, params, ...] of n elements.
func (d *decoder) record(n int, h *model.StepState) error {
	if err := d.arrayOf(n, "step"); err != nil {
		return err
	}
	var err error
	if h.Path, err = d.name("path"); err != nil {
		return err
	}
	parent, err := d.uint32("parent")
	if err != nil {
		return err
	}
	h.Parent = model.StepID(parent)
	if h.Done, err = d.bool("done"); err != nil {
		return err
	}
	h.Params, err = d.params(0)
	return err
}

// params reads a map with text keys in deterministic order.
func (d *decoder) params(depth int) (model.Params, error) {
	n, err := d.count(majMap, "map")
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	m := make(model.Params, 0, n)
	var last []byte
	for i := range n {
		k, err := d.rawText("map key")
		if err != nil {
			return nil, err
		}
		if i > 0 {
			if c := compareKeys(last, k); c >= 0 {
				if c == 0 {
					return nil, d.fail(fmt.Errorf("%w: %q", ErrDuplicateKey, truncate(string(k), 32)))
				}
				return nil, d.fail(fmt.Errorf("%w: key %q out of order", ErrNonCanonical, truncate(string(k), 32)))
			}
		}
		last = k
		key := d.intern(k)
		d.push("", 0, key)
		v, err := d.value(depth + 1)
		d.pop()
		if err != nil {
			return nil, err
		}
		m = append(m, model.Param{Name: key, Value: v})
	}
	return m, nil
}

// compareKeys orders text keys as their encodings sort: shorter first.
func compareKeys(a, b []byte) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return bytes.Compare(a, b)
}

func (d *decoder) value(depth int) (model.Value, error) {
	if depth > d.lim.MaxDepth {
		return model.Null, d.fail(fmt.Errorf("%w: nested deeper than %d", ErrTooLarge, d.lim.MaxDepth))
	}
	if d.off >= len(d.data) {
		return model.Null, d.fail(ErrTruncated)
	}
	switch d.data[d.off] {
	case simpleNull:
		d.off++
		return model.Null, nil
	case simpleTrue, simpleFalse:
		b, err := d.bool("value")
		return model.BoolVal(b), err
	}
	start := d.off
	major, arg, err := d.head()
	if err != nil {
		return model.Null, err
	}
	switch major {
	case majUint, majNint:
		if arg > math.MaxInt64 {
			return model.Null, d.fail(fmt.Errorf("%w: integer out of int64 range", ErrMalformed))
		}
		if major == majNint {
			return model.IntVal(-1 - int64(arg)), nil
		}
		return model.IntVal(int64(arg)), nil
	case majText:
		b, err := d.payload(arg)
		return model.StringVal(string(b)), err
	case majBytes:
		if arg > uint64(len(d.data)-d.off) {
			return model.Null, d.fail(fmt.Errorf("%w: byte string of %d bytes, %d left", ErrTruncated, arg, len(d.data)-d.off))
		}
		b := d.data[d.off : d.off+int(arg)]
		d.off += int(arg)
		return model.BytesVal(b), nil
	case majArray:
		d.off = start
		n, err := d.count(majArray, "list")
		if err != nil {
			return model.Null, err
		}
		vs := make([]model.Value, n)
		for i := range vs {
			if vs[i], err = d.value(depth + 1); err != nil {
				return model.Null, err
			}
		}
		return model.ListVal(vs...), nil
	case majMap:
		d.off = start
		m, err := d.params(depth)
		if err != nil {
			return model.Null, err
		}
		return model.MapOf(m), nil
	case majTag:
		return d.taggedValue(arg)
	}
	d.off = start
	return model.Null, d.fail(fmt.Errorf("%w: simple value 0x%02x", ErrMalformed, d.data[start]))
}

func (d *decoder) taggedValue(tag uint64) (model.Value, error) {
	switch tag {
	case TagDecimal:
		if err := d.arrayOf(2, "decimal"); err != nil {
			return model.Null, err
		}
		exp, err := d.int()
		if err != nil {
			return model.Null, err
		}
		if exp > 0 || exp < -model.MaxDecimalScale {
			return model.Null, d.fail(fmt.Errorf("%w: decimal exponent %d", ErrMalformed, exp))
		}
		units, err := d.int()
		if err != nil {
			return model.Null, err
		}
		return model.DecimalVal(units, uint8(-exp)), nil
	case TagTime:
		sec, nsec, err := d.timeBody()
		if err != nil {
			return model.Null, err
		}
		return model.TimeFromParts(sec, nsec), nil
	case TagEntityRef:
		if err := d.arrayOf(3, "entity reference"); err != nil {
			return model.Null, err
		}
		var r model.Ref
		var err error
		if r.Type, err = d.text("entity type"); err != nil {
			return model.Null, err
		}
		if r.ID, err = d.text("entity id"); err != nil {
			return model.Null, err
		}
		if r.Version, err = d.uint("entity version"); err != nil {
			return model.Null, err
		}
		return model.RefVal(r), nil
	}
	return model.Null, d.fail(fmt.Errorf("%w: %d", ErrUnknownTag, tag))
}
