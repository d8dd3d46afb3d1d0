package cbor_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"understudy/cbor"
	"understudy/model"
	"understudy/model/modeltest"
)

// genValue draws any value the model can hold, nested up to depth.
func genValue(t *rapid.T, depth int) model.Value {
	kinds := 9
	if depth <= 0 {
		kinds = 7
	}
	switch rapid.IntRange(0, kinds).Draw(t, "kind") {
	case 0:
		return model.Null
	case 1:
		return model.StringVal(rapid.String().Draw(t, "s"))
	case 2:
		return model.IntVal(rapid.Int64().Draw(t, "i"))
	case 3:
		return model.DecimalVal(rapid.Int64().Draw(t, "units"), rapid.Uint8Range(0, model.MaxDecimalScale).Draw(t, "scale"))
	case 4:
		return model.BoolVal(rapid.Bool().Draw(t, "b"))
	case 5:
		return model.TimeFromParts(rapid.Int64Range(-1e12, 1e12).Draw(t, "sec"), rapid.Int32Range(0, 999_999_999).Draw(t, "nsec"))
	case 6:
		return model.BytesVal(rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "bytes"))
	case 7:
		v := modeltest.Vehicles()[rapid.IntRange(0, 2).Draw(t, "vehicle")]
		return model.RefVal(v.EntityRef())
	case 8:
		n := rapid.IntRange(0, 3).Draw(t, "len")
		vs := make([]model.Value, n)
		for i := range vs {
			vs[i] = genValue(t, depth-1)
		}
		return model.ListVal(vs...)
	default:
		m := map[string]model.Value{}
		for range rapid.IntRange(0, 3).Draw(t, "len") {
			m[rapid.String().Draw(t, "key")] = genValue(t, depth-1)
		}
		return model.MapVal(m)
	}
}

// genApp draws an application of every step kind; apps counts the
// applications drawn so far, for unique names.
func genApp(t *rapid.T, depth int, apps *int) *model.Application {
	*apps++
	name := "app" + strconv.Itoa(*apps)
	return model.App(name, rapid.IntRange(1, 3).Draw(t, "version"), genSteps(t, depth, apps, 1, 4)...)
}

func genSteps(t *rapid.T, depth int, apps *int, lo, hi int) []model.Step {
	n := rapid.IntRange(lo, hi).Draw(t, "steps")
	steps := make([]model.Step, 0, n)
	for i := range n {
		steps = append(steps, genStep(t, "s"+strconv.Itoa(i), depth, apps))
	}
	return steps
}

func genStep(t *rapid.T, name string, depth int, apps *int) model.Step {
	kind := rapid.IntRange(0, 5).Draw(t, "step kind")
	if depth >= 2 && kind >= 3 {
		kind = rapid.IntRange(0, 2).Draw(t, "leaf kind")
	}
	switch kind {
	case 0, 1:
		return genInteractive(t, name)
	case 2:
		params := map[string]model.Value{}
		for range rapid.IntRange(0, 3).Draw(t, "results") {
			params[rapid.StringMatching(`[a-z]{1,6}`).Draw(t, "result")] = genValue(t, 2)
		}
		return model.Simple(name, func(ctx model.Context, st *model.State) error {
			for k, v := range params {
				st.Set(k, v)
			}
			st.Set("at", model.TimeVal(ctx.Now()))
			return nil
		})
	case 3:
		body := model.Sequence("it", append([]model.Step{model.Interactive("q", model.Bool("again"))}, genSteps(t, depth+1, apps, 0, 2)...)...)
		return model.Repeat(name, body, model.While("q.again")).Max(rapid.IntRange(1, 3).Draw(t, "max"))
	case 4:
		yes := rapid.Bool().Draw(t, "branch")
		var otherwise []model.Step
		if rapid.Bool().Draw(t, "has else") {
			otherwise = append(otherwise, genStep(t, "else", depth+1, apps))
		}
		return model.If(name, func(*model.State) bool { return yes }, genStep(t, "then", depth+1, apps), otherwise...)
	default:
		return model.Call(name, genApp(t, depth+1, apps)).With("arg", "s0")
	}
}

func genInteractive(t *rapid.T, name string) *model.InteractiveStep {
	var fields []*model.Field
	for i := range rapid.IntRange(0, 3).Draw(t, "fields") {
		f := "f" + strconv.Itoa(i)
		switch rapid.IntRange(0, 6).Draw(t, "field type") {
		case 0:
			fields = append(fields, model.Text(f))
		case 1:
			fields = append(fields, model.Int(f))
		case 2:
			fields = append(fields, model.Bool(f))
		case 3:
			fields = append(fields, model.Decimal(f, rapid.Uint8Range(0, 4).Draw(t, "scale")))
		case 4:
			fields = append(fields, model.Date(f))
		case 5:
			fields = append(fields, model.Choice(f, model.Opt("a", "A"), model.Opt("b", "B")))
		default:
			fields = append(fields, model.Pick(f, "vehicles"))
		}
	}
	return model.Interactive(name, fields...)
}

// genInput draws a form for a page: mostly valid answers, sometimes not.
func genInput(t *rapid.T, pg *model.Page) url.Values {
	v := url.Values{}
	for _, f := range pg.Fields {
		if rapid.IntRange(0, 9).Draw(t, "skip") == 0 {
			continue
		}
		var s string
		switch f.Type {
		case "text":
			s = rapid.StringMatching(`[a-zA-Z ]{0,12}`).Draw(t, "text")
		case "int":
			s = strconv.Itoa(rapid.IntRange(-1000, 1000).Draw(t, "int"))
		case "bool":
			s = rapid.SampledFrom([]string{"", "on"}).Draw(t, "bool")
		case "decimal":
			s = rapid.StringMatching(`-?[0-9]{1,5}(\.[0-9]{1,2})?`).Draw(t, "decimal")
		case "date":
			s = time.Date(rapid.IntRange(1900, 2100).Draw(t, "year"), 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rapid.IntRange(0, 364).Draw(t, "day")).Format(time.DateOnly)
		case "choice":
			s = rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "choice")
		case "entity":
			s = rapid.SampledFrom([]string{"v1", "v2", "v3", "v9"}).Draw(t, "entity")
		}
		v.Set(f.Name, s)
	}
	return v
}

// TestPropertyRoundTrip: random applications, driven by random input, give
// sessions that encode → decode → encode byte-identical after every
// interaction, and materialize to the same state and the same page.
func TestPropertyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		apps := 0
		app := genApp(t, 0, &apps)
		reg := model.NewRegistry()
		if err := reg.Register(app); err != nil {
			t.Fatalf("generated a bad application: %v", err)
		}
		eng := model.NewEngine(reg, modeltest.Resolver())
		now := modeltest.Epoch
		run, err := eng.Start(ctx, model.Begin{App: app.Name(), Session: modeltest.SessionID(rapid.Int().Draw(t, "id")), Now: now, Node: "n1", Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ {
			checkRoundTrip(t, eng, run)
			if run.Finished() {
				return
			}
			pg, err := eng.Page(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Duration(rapid.Int64Range(1, 1e12).Draw(t, "elapsed")))
			next, err := eng.Submit(ctx, run, model.Input{Seq: run.Seq(), Values: genInput(t, pg), Now: now, Node: "n" + strconv.Itoa(i%3), Epoch: uint64(i)})
			var bad *model.InvalidInputError
			switch {
			case errors.As(err, &bad):
				continue
			case err != nil:
				t.Fatal(err)
			}
			run = next
		}
	})
}

func checkRoundTrip(t *rapid.T, eng *model.Engine, run *model.Run) {
	b, err := cbor.Marshal(run.Session())
	if err != nil {
		t.Fatal(err)
	}
	back, err := cbor.Decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !back.Equal(run.Session()) {
		t.Fatal("decoded session differs")
	}
	again, err := cbor.Marshal(back)
	if err != nil || !bytes.Equal(b, again) {
		t.Fatalf("re-encoding differs (%v)", err)
	}
	live, err := eng.Materialize(ctx, back)
	if err != nil {
		t.Fatalf("materialize: %v", err)
	}
	if !live.Session().Equal(run.Session()) {
		t.Fatal("materialized session differs")
	}
	p1, err1 := eng.Page(ctx, run)
	p2, err2 := eng.Page(ctx, live)
	if err1 != nil || err2 != nil {
		t.Fatalf("pages: %v %v", err1, err2)
	}
	if fmt.Sprint(p1.Step, p1.Seq, p1.Fields, p1.Finished) != fmt.Sprint(p2.Step, p2.Seq, p2.Fields, p2.Finished) || !p1.Values.Equal(p2.Values) {
		t.Fatalf("pages differ: %s@%d vs %s@%d", p1.Step, p1.Seq, p2.Step, p2.Seq)
	}
}
