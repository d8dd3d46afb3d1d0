package cbor_test

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"testing"
	"time"

	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
)

// benchSession is the realistic session of the codec benchmark: a quote with
// 12 drivers waiting in the card application (3 running applications, 61
// steps of all four kinds, entity references), about 4 KiB encoded.
func benchSession(b *testing.B) *model.Session {
	run, _, err := modeltest.Drive(ctx, modeltest.Engine(), modeltest.SessionID(1), 12, "payment/card/details")
	if err != nil {
		b.Fatal(err)
	}
	return run.Session()
}

// BenchmarkCodec measures encode+decode of one snapshot, from *model.Session
// back to *model.Session, with the snapshot codec and with gob and JSON over
// plain exported mirror types (the conversion to and from them is counted:
// it is part of what those codecs would cost here). gob uses a fresh encoder
// and decoder per snapshot, as a per-message snapshot must.
func BenchmarkCodec(b *testing.B) {
	s := benchSession(b)
	b.Run("cbor", func(b *testing.B) {
		enc := cbor.NewEncoder()
		var n int
		b.ReportAllocs()
		for b.Loop() {
			data, err := enc.Encode(s)
			if err != nil {
				b.Fatal(err)
			}
			n = len(data)
			if _, err := cbor.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "bytes/snapshot")
	})
	b.Run("gob", func(b *testing.B) {
		var n int
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			if err := gob.NewEncoder(&buf).Encode(toPlain(s)); err != nil {
				b.Fatal(err)
			}
			n = buf.Len()
			var p plainSession
			if err := gob.NewDecoder(&buf).Decode(&p); err != nil {
				b.Fatal(err)
			}
			_ = fromPlain(&p)
		}
		b.ReportMetric(float64(n), "bytes/snapshot")
	})
	b.Run("json", func(b *testing.B) {
		var n int
		b.ReportAllocs()
		for b.Loop() {
			data, err := json.Marshal(toPlain(s))
			if err != nil {
				b.Fatal(err)
			}
			n = len(data)
			var p plainSession
			if err := json.Unmarshal(data, &p); err != nil {
				b.Fatal(err)
			}
			_ = fromPlain(&p)
		}
		b.ReportMetric(float64(n), "bytes/snapshot")
	})
}

// TestPlainMirrorIsFaithful keeps the benchmark honest: the gob and JSON
// paths carry the whole session.
func TestPlainMirrorIsFaithful(t *testing.T) {
	for name, s := range sessions(t) {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(toPlain(s)); err != nil {
			t.Fatal(err)
		}
		var p plainSession
		if err := gob.NewDecoder(&buf).Decode(&p); err != nil {
			t.Fatal(err)
		}
		if !fromPlain(&p).Equal(s) {
			t.Errorf("%s: gob mirror loses data", name)
		}
		data, _ := json.Marshal(toPlain(s))
		var q plainSession
		if err := json.Unmarshal(data, &q); err != nil {
			t.Fatal(err)
		}
		if !fromPlain(&q).Equal(s) {
			t.Errorf("%s: JSON mirror loses data", name)
		}
	}
}

type plainSession struct {
	ID, Node, App    string
	Epoch, Seq       uint64
	Created, Updated time.Time
	Version          int
	Root, NextID     uint32
	Composite        map[uint32]plainComposite
	Simple           map[uint32]plainStep
	Interactive      map[uint32]plainStep
	Application      map[uint32]plainCall
}

type plainStep struct {
	Path   string
	Parent uint32
	Done   bool
	Params map[string]plainValue
}

type plainComposite struct {
	Step     plainStep
	Children []uint32
}

type plainCall struct {
	Step    plainStep
	App     string
	Version int
	Root    uint32
}

type plainValue struct {
	K  model.Kind
	S  string                `json:",omitempty"`
	N  int64                 `json:",omitempty"`
	Sc uint8                 `json:",omitempty"`
	Ns int32                 `json:",omitempty"`
	L  []plainValue          `json:",omitempty"`
	M  map[string]plainValue `json:",omitempty"`
	R  *model.Ref            `json:",omitempty"`
}

func toPlainValue(v model.Value) plainValue {
	p := plainValue{K: v.Kind()}
	switch v.Kind() {
	case model.KindString:
		p.S = v.Str()
	case model.KindBytes:
		p.S = string(v.Bytes())
	case model.KindInt:
		p.N = v.Int()
	case model.KindDecimal:
		p.N, p.Sc = v.Decimal()
	case model.KindBool:
		if v.Bool() {
			p.N = 1
		}
	case model.KindTime:
		p.N, p.Ns = v.TimeParts()
	case model.KindList:
		for i := range v.Len() {
			p.L = append(p.L, toPlainValue(v.Index(i)))
		}
	case model.KindMap:
		p.M = map[string]plainValue{}
		for _, e := range v.Entries() {
			p.M[e.Name] = toPlainValue(e.Value)
		}
	case model.KindRef:
		r, _ := v.Ref()
		p.R = &r
	}
	return p
}

func fromPlainValue(p plainValue) model.Value {
	switch p.K {
	case model.KindString:
		return model.StringVal(p.S)
	case model.KindBytes:
		return model.BytesVal([]byte(p.S))
	case model.KindInt:
		return model.IntVal(p.N)
	case model.KindDecimal:
		return model.DecimalVal(p.N, p.Sc)
	case model.KindBool:
		return model.BoolVal(p.N != 0)
	case model.KindTime:
		return model.TimeFromParts(p.N, p.Ns)
	case model.KindList:
		vs := make([]model.Value, len(p.L))
		for i, x := range p.L {
			vs[i] = fromPlainValue(x)
		}
		return model.ListVal(vs...)
	case model.KindMap:
		m := make(map[string]model.Value, len(p.M))
		for k, x := range p.M {
			m[k] = fromPlainValue(x)
		}
		return model.MapVal(m)
	case model.KindRef:
		return model.RefVal(*p.R)
	}
	return model.Null
}

func toPlainStep(h *model.StepState) plainStep {
	p := plainStep{Path: h.Path, Parent: uint32(h.Parent), Done: h.Done}
	if len(h.Params) > 0 {
		p.Params = make(map[string]plainValue, len(h.Params))
		for _, prm := range h.Params {
			p.Params[prm.Name] = toPlainValue(prm.Value)
		}
	}
	return p
}

func fromPlainStep(p plainStep) model.StepState {
	h := model.StepState{Path: p.Path, Parent: model.StepID(p.Parent), Done: p.Done}
	if len(p.Params) > 0 {
		m := make(map[string]model.Value, len(p.Params))
		for k, v := range p.Params {
			m[k] = fromPlainValue(v)
		}
		h.Params = model.ParamsOf(m)
	}
	return h
}

func toPlain(s *model.Session) *plainSession {
	p := &plainSession{
		ID: string(s.ID), Node: s.Node, App: s.App, Epoch: s.Epoch, Seq: s.Seq,
		Created: s.Created, Updated: s.Updated, Version: s.Version, Root: uint32(s.Root), NextID: uint32(s.NextID),
		Composite: map[uint32]plainComposite{}, Simple: map[uint32]plainStep{},
		Interactive: map[uint32]plainStep{}, Application: map[uint32]plainCall{},
	}
	for id, st := range s.Pool.Composite {
		c := plainComposite{Step: toPlainStep(&st.StepState)}
		for _, ch := range st.Children {
			c.Children = append(c.Children, uint32(ch))
		}
		p.Composite[uint32(id)] = c
	}
	for id, st := range s.Pool.Simple {
		p.Simple[uint32(id)] = toPlainStep(&st.StepState)
	}
	for id, st := range s.Pool.Interactive {
		p.Interactive[uint32(id)] = toPlainStep(&st.StepState)
	}
	for id, st := range s.Pool.Application {
		p.Application[uint32(id)] = plainCall{Step: toPlainStep(&st.StepState), App: st.App, Version: st.Version, Root: uint32(st.Root)}
	}
	return p
}

func fromPlain(p *plainSession) *model.Session {
	s := &model.Session{
		ID: model.SessionID(p.ID), Node: p.Node, App: p.App, Epoch: p.Epoch, Seq: p.Seq,
		Created: p.Created, Updated: p.Updated, Version: p.Version, Root: model.StepID(p.Root), NextID: model.StepID(p.NextID),
		Pool: model.NewPool(),
	}
	for id, c := range p.Composite {
		st := &model.CompositeState{StepState: fromPlainStep(c.Step)}
		for _, ch := range c.Children {
			st.Children = append(st.Children, model.StepID(ch))
		}
		s.Pool.Composite[model.StepID(id)] = st
	}
	for id, x := range p.Simple {
		s.Pool.Simple[model.StepID(id)] = &model.SimpleState{StepState: fromPlainStep(x)}
	}
	for id, x := range p.Interactive {
		s.Pool.Interactive[model.StepID(id)] = &model.InteractiveState{StepState: fromPlainStep(x)}
	}
	for id, x := range p.Application {
		s.Pool.Application[model.StepID(id)] = &model.ApplicationState{StepState: fromPlainStep(x.Step), App: x.App, Version: x.Version, Root: model.StepID(x.Root)}
	}
	return s
}

// BenchmarkEncode and BenchmarkDecode split BenchmarkCodec/cbor in its halves:
// a primary encodes after every interaction; a backup decodes only when it
// takes a session over.
func BenchmarkEncode(b *testing.B) {
	s := benchSession(b)
	enc := cbor.NewEncoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data, err := cbor.Marshal(benchSession(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cbor.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
