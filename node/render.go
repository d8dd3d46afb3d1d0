package node

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

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
	t, err := template.New("").ParseFS(assets, "templates/*.html")
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
	Answers []model.Answered // a finished session's summary
	// For messages (errors, unavailability):
	Status  int
	Title   string
	Message string
	Reason  string
	Restart bool // offer to start again
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
