package node

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"understudy/model"
)

//go:embed templates/*.html templates/*.css
var assets embed.FS

// ui renders pages: generically from a page's field descriptions, or with
// an application's own template for a step that names one.
type ui struct {
	tmpl     *template.Template
	override *template.Template
	css      []byte
}

func newUI(override *template.Template) (*ui, error) {
	t, err := template.New("").Funcs(template.FuncMap{
		"human": human,
		"inc":   func(i int) int { return i + 1 },
	}).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	css, err := assets.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	return &ui{tmpl: t, override: override, css: css}, nil
}

// view is what a response shows: a page of the application, or a message.
type view struct {
	Page    *model.Page
	CSRF    string
	Stale   bool
	Summary []item
	// For messages (errors, unavailability):
	Status  int
	Title   string
	Message string
	Reason  string
	Restart bool // offer to start again
}

// item is one line of the summary: a label and a value, or a group.
type item struct {
	Label    string
	Value    string
	Children []item
}

// pageJSON is a page's JSON twin.
type pageJSON struct {
	*model.Page
	CSRF  string `json:"csrf,omitempty"`
	Stale bool   `json:"stale,omitempty"`
}

type messageJSON struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// render writes v as HTML or, when the client asks for it, as JSON.
func (u *ui) render(w http.ResponseWriter, r *http.Request, status int, v view) {
	h := w.Header()
	if v.Page != nil {
		h.Set("Understudy-Seq", strconv.FormatUint(v.Page.Seq, 10))
		if v.Stale {
			h.Set("Understudy-Stale", "1")
		}
	}
	h.Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		if v.Page != nil {
			enc.Encode(pageJSON{Page: v.Page, CSRF: v.CSRF, Stale: v.Stale})
		} else {
			enc.Encode(messageJSON{Error: v.Message, Reason: v.Reason})
		}
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	name := "message.html"
	var t *template.Template = u.tmpl
	switch {
	case v.Page == nil:
	case v.Page.Finished:
		name = "summary.html"
	case v.Page.Template != "" && u.override != nil && u.override.Lookup(v.Page.Template) != nil:
		t, name = u.override, v.Page.Template
	default:
		name = "page.html"
	}
	if err := t.ExecuteTemplate(w, name, v); err != nil {
		// Headers are gone; the page is cut short. Say so in the log only.
		fmt.Fprintf(w, "\n<!-- render error -->\n")
	}
}

// summarize turns a session's values into labelled lines.
func (n *Node) summarize(ctx context.Context, run *model.Run, v model.Value) []item {
	var out []item
	for _, e := range v.Entries() {
		out = append(out, n.summaryItem(ctx, run, human(e.Name), e.Value))
	}
	return out
}

func (n *Node) summaryItem(ctx context.Context, run *model.Run, label string, v model.Value) item {
	switch v.Kind() {
	case model.KindMap:
		return item{Label: label, Children: n.summarize(ctx, run, v)}
	case model.KindList:
		it := item{Label: label}
		for i := range v.Len() {
			it.Children = append(it.Children, n.summaryItem(ctx, run, strconv.Itoa(i+1), v.Index(i)))
		}
		return it
	case model.KindRef:
		ref, _ := v.Ref()
		return item{Label: label, Value: n.eng.EntityLabel(ctx, run, ref)}
	case model.KindBytes:
		return item{Label: label, Value: "(recorded)"}
	}
	return item{Label: label, Value: v.String()}
}

// human turns a name into a label: "firstName" and "first_name" become
// "First name".
func human(name string) string {
	var b strings.Builder
	for i, r := range name {
		switch {
		case r == '_' || r == '-':
			b.WriteRune(' ')
		case i > 0 && unicode.IsUpper(r):
			b.WriteRune(' ')
			b.WriteRune(unicode.ToLower(r))
		case i == 0:
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
