package model

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
)

// MarshalJSON writes a value the way a JSON client reads it most easily:
// strings, integers and booleans natively, decimals as strings ("12.50", no
// float rounding), times in RFC 3339 with nanoseconds, bytes in base64, and
// references as {"type","id","version"}.
func (v Value) MarshalJSON() ([]byte, error) {
	return v.appendJSON(nil)
}

func (v Value) appendJSON(b []byte) ([]byte, error) {
	switch v.kind {
	case KindNull:
		return append(b, "null"...), nil
	case KindString:
		return appendJSONString(b, v.s)
	case KindInt:
		return strconv.AppendInt(b, v.n, 10), nil
	case KindDecimal:
		return appendJSONString(b, FormatDecimal(v.n, v.scale))
	case KindBool:
		return strconv.AppendBool(b, v.n != 0), nil
	case KindTime:
		return appendJSONString(b, v.Time().Format(time.RFC3339Nano))
	case KindBytes:
		return appendJSONString(b, base64.StdEncoding.EncodeToString([]byte(v.s)))
	case KindList:
		b = append(b, '[')
		for i, x := range v.list() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = x.appendJSON(b); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case KindMap:
		b = append(b, '{')
		for i, k := range v.Keys() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSONString(b, k); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = v.Key(k).appendJSON(b); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case KindRef:
		out, err := json.Marshal(struct {
			Type    string `json:"type"`
			ID      string `json:"id"`
			Version uint64 `json:"version"`
		}{v.ref().Type, v.ref().ID, v.ref().Version})
		return append(b, out...), err
	}
	return append(b, "null"...), nil
}

func appendJSONString(b []byte, s string) ([]byte, error) {
	out, err := json.Marshal(s)
	return append(b, out...), err
}
