package replaycmd

import "strings"

// indentEDN lays out CBOR diagnostic notation (as fxamacker/cbor's
// Diagnose writes it, on one line) over several lines: a container that
// fits in the width stays on one line, a longer one puts each item on a
// line of its own, indented. Strings and byte strings are left alone.
func indentEDN(s string) string {
	items, _ := parseEDN(s, 0, 0)
	var b strings.Builder
	for _, it := range items {
		writeEDN(&b, it, 0)
	}
	return b.String()
}

const ednWidth = 100

// ednPiece is a run of text, or a container: '[', '{' or a tag's '('
// (then text holds what precedes it, e.g. "1001"), with its items.
type ednPiece struct {
	text  string
	open  byte
	items [][]ednPiece
}

var closer = map[byte]byte{'[': ']', '{': '}', '(': ')'}

// parseEDN reads pieces from s[i:] until the closing byte close (0: the
// end) and returns them with the index after it. Items are split at
// top-level commas.
func parseEDN(s string, i int, close byte) ([][]ednPiece, int) {
	var items [][]ednPiece
	var cur []ednPiece
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			cur = append(cur, ednPiece{text: text.String()})
			text.Reset()
		}
	}
	for i < len(s) {
		ch := s[i]
		switch {
		case ch == '"' || ch == '\'':
			j := i + 1
			for j < len(s) && s[j] != ch {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			text.WriteString(s[i:min(j+1, len(s))])
			i = j + 1
			continue
		case ch == '[' || ch == '{' || ch == '(':
			// A tag's number is the text just before its '('.
			flush()
			sub, next := parseEDN(s, i+1, closer[ch])
			p := ednPiece{open: ch, items: sub}
			if ch == '(' && len(cur) > 0 && cur[len(cur)-1].open == 0 {
				p.text = cur[len(cur)-1].text
				cur = cur[:len(cur)-1]
			}
			cur = append(cur, p)
			i = next
			continue
		case close != 0 && ch == close:
			flush()
			if len(cur) > 0 || len(items) > 0 {
				items = append(items, cur)
			}
			return items, i + 1
		case ch == ',':
			flush()
			items = append(items, cur)
			cur = nil
			i++
			for i < len(s) && s[i] == ' ' {
				i++
			}
			continue
		}
		text.WriteByte(ch)
		i++
	}
	flush()
	if len(cur) > 0 {
		items = append(items, cur)
	}
	return items, i
}

// flatEDN is an item on one line.
func flatEDN(item []ednPiece) string {
	var b strings.Builder
	for _, p := range item {
		b.WriteString(p.text)
		if p.open == 0 {
			continue
		}
		b.WriteByte(p.open)
		for i, it := range p.items {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(flatEDN(it))
		}
		b.WriteByte(closer[p.open])
	}
	return b.String()
}

func writeEDN(b *strings.Builder, item []ednPiece, indent int) {
	if flat := flatEDN(item); indent+len(flat) <= ednWidth {
		b.WriteString(flat)
		return
	}
	pad := strings.Repeat("  ", indent/2+1)
	for _, p := range item {
		b.WriteString(p.text)
		if p.open == 0 {
			continue
		}
		b.WriteByte(p.open)
		b.WriteByte('\n')
		for i, it := range p.items {
			b.WriteString(pad)
			writeEDN(b, it, indent+2)
			if i < len(p.items)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(pad[2:])
		b.WriteByte(closer[p.open])
	}
}
