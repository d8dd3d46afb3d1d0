package entity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"understudy/model"
)

// encodeFields writes an entity's fields as a JSON object that keeps their
// model types (see the package documentation). Keys are sorted, so equal
// fields give equal text.
func encodeFields(fields map[string]model.Value) (string, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range slices.Sorted(maps.Keys(fields)) {
		v := fields[name]
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		switch v.Kind() {
		case model.KindNull:
			b.WriteString("null")
		case model.KindString:
			s, _ := json.Marshal(v.Str())
			b.Write(s)
		case model.KindInt:
			b.WriteString(strconv.FormatInt(v.Int(), 10))
		case model.KindDecimal:
			b.WriteString(model.FormatDecimal(v.Decimal()))
		case model.KindBool:
			b.WriteString(strconv.FormatBool(v.Bool()))
		case model.KindTime:
			s, _ := json.Marshal(v.Time().Format(time.RFC3339Nano))
			b.WriteString(`{"time":`)
			b.Write(s)
			b.WriteByte('}')
		default:
			return "", fmt.Errorf("field %s: a %s cannot be stored", name, v.Kind())
		}
	}
	b.WriteByte('}')
	return b.String(), nil
}

// decodeFields reads what encodeFields wrote, or what an operator wrote by
// hand in the same form.
func decodeFields(text string) (map[string]model.Value, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // keeps a number's literal, so 31000.00 keeps its scale
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("fields: %w", err)
	}
	out := make(map[string]model.Value, len(raw))
	for name, x := range raw {
		v, err := decodeValue(x)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

func decodeValue(x any) (model.Value, error) {
	switch x := x.(type) {
	case nil:
		return model.Null, nil
	case string:
		return model.StringVal(x), nil
	case bool:
		return model.BoolVal(x), nil
	case json.Number:
		return decodeNumber(string(x))
	case map[string]any:
		if s, ok := x["time"].(string); ok && len(x) == 1 {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return model.Null, err
			}
			return model.TimeVal(t), nil
		}
	}
	return model.Null, fmt.Errorf("unsupported JSON value %T", x)
}

// decodeNumber reads an integer literal as an int and a literal with a
// point as a decimal of as many digits as it has after the point.
func decodeNumber(s string) (model.Value, error) {
	if strings.ContainsAny(s, "eE") {
		return model.Null, fmt.Errorf("number %s: write it without an exponent", s)
	}
	_, frac, isDecimal := strings.Cut(s, ".")
	if !isDecimal {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return model.Null, fmt.Errorf("number %s: %w", s, err)
		}
		return model.IntVal(n), nil
	}
	if len(frac) > model.MaxDecimalScale {
		return model.Null, fmt.Errorf("number %s: more than %d digits after the point", s, model.MaxDecimalScale)
	}
	scale := uint8(len(frac))
	units, err := model.ParseDecimal(s, scale)
	if err != nil {
		return model.Null, fmt.Errorf("number %s: %w", s, err)
	}
	return model.DecimalVal(units, scale), nil
}
