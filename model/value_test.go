package model_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"understudy/model"
)

func TestDecimals(t *testing.T) {
	cases := []struct {
		in    string
		scale uint8
		units int64
		out   string
		bad   bool
	}{
		{"12", 2, 1200, "12.00", false},
		{"12.5", 2, 1250, "12.50", false},
		{"-0.75", 2, -75, "-0.75", false},
		{".5", 1, 5, "0.5", false},
		{"+3", 0, 3, "3", false},
		{"0.001", 2, 0, "", true},
		{"1e3", 2, 0, "", true},
		{"", 2, 0, "", true},
		{"-", 2, 0, "", true},
		{"92233720368547758.08", 2, 0, "", true},
		{"92233720368547758.07", 2, math.MaxInt64, "92233720368547758.07", false},
	}
	for _, c := range cases {
		u, err := model.ParseDecimal(c.in, c.scale)
		if c.bad {
			if err == nil {
				t.Errorf("ParseDecimal(%q) = %d, want an error", c.in, u)
			}
			continue
		}
		if err != nil || u != c.units {
			t.Errorf("ParseDecimal(%q, %d) = %d, %v; want %d", c.in, c.scale, u, err, c.units)
		}
		if got := model.FormatDecimal(u, c.scale); got != c.out {
			t.Errorf("FormatDecimal(%d, %d) = %q, want %q", u, c.scale, got, c.out)
		}
	}
	if got := model.FormatDecimal(math.MinInt64, 2); got != "-92233720368547758.08" {
		t.Errorf("MinInt64: %s", got)
	}
}

func TestValueEqualAndJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	v := model.MapVal(map[string]model.Value{
		"s": model.StringVal("x\"y"), "i": model.IntVal(-3), "d": model.DecimalVal(150, 2),
		"b": model.BoolVal(true), "t": model.TimeVal(at), "x": model.BytesVal([]byte{1, 2}),
		"l": model.ListVal(model.Null, model.IntVal(1)),
		"r": model.RefVal(model.Ref{Type: "vehicles", ID: "v1", Version: 3}),
	})
	same := model.MapVal(map[string]model.Value{
		"s": model.StringVal("x\"y"), "i": model.IntVal(-3), "d": model.DecimalVal(150, 2),
		"b": model.BoolVal(true), "t": model.TimeVal(at.In(time.FixedZone("x", 3600))), "x": model.BytesVal([]byte{1, 2}),
		"l": model.ListVal(model.Null, model.IntVal(1)),
		"r": model.RefVal(model.Ref{Type: "vehicles", ID: "v1", Version: 3}),
	})
	if !v.Equal(same) {
		t.Error("equal values differ")
	}
	if v.Equal(model.MapVal(map[string]model.Value{"d": model.DecimalVal(15, 1)})) || model.DecimalVal(150, 2).Equal(model.DecimalVal(15, 1)) {
		t.Error("1.50 equals 1.5")
	}
	if got := v.Key("t").Time(); !got.Equal(at) || got.Nanosecond() != 6 {
		t.Errorf("time lost nanoseconds: %v", got)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":true,"d":"1.50","i":-3,"l":[null,1],"r":{"type":"vehicles","id":"v1","version":3},"s":"x\"y","t":"2026-01-02T03:04:05.000000006Z","x":"AQI="}`
	if string(out) != want {
		t.Errorf("JSON\n got %s\nwant %s", out, want)
	}
}
