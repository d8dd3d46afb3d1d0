package pages

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"understudy/model"
	"understudy/wire"
)

//go:embed templates/*.html templates/*.css
var assets embed.FS

// UI renders pages: generically from a page's field descriptions, or with
// an application's own template for a step that names one.
type UI struct {
	tmpl     *template.Template
	override *template.Template
	css      []byte
}

// New parses the templates, with override holding an application's own
// (nil: none).
func New(override *template.Template) (*UI, error) {
	t, err := template.New("").Funcs(pageFuncs).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	css, err := assets.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	return &UI{tmpl: t, override: override, css: css}, nil
}

// CSS is the style sheet the pages link as /static/style.css.
func (u *UI) CSS() []byte { return u.css }

// View is what a response shows: a page of the application, or a message.
type View struct {
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

// DocTitle is the document's <title>: the page's own heading, then the
// application's, so that every page has a title of its own (a screen
// reader announces it first, and a browser's history lists it), with
// "Error: " first on a page that shows errors, as GOV.UK does.
func (v View) DocTitle() string {
	pg := v.Page
	if pg == nil {
		return v.Title
	}
	t := pg.StepTitle
	switch {
	case pg.Finished && t == "":
		t = "Application complete"
	case pg.Iteration > 1:
		t += " (" + strconv.Itoa(pg.Iteration) + ")"
	}
	if pg.Title != "" && pg.Title != t {
		t += " – " + pg.Title
	}
	if len(pg.Errors) > 0 {
		t = "Error: " + t
	}
	return t
}

// pageFuncs are what the generic templates need to write a field's
// attributes.
var pageFuncs = template.FuncMap{
	// describedby lists the ids of a field's help and error, for
	// aria-describedby.
	"describedby": func(f model.PageField) string {
		var ids []string
		if f.Help != "" {
			ids = append(ids, "h-"+f.Name)
		}
		if f.Error != "" {
			ids = append(ids, "e-"+f.Name)
		}
		return strings.Join(ids, " ")
	},
	// optionID is the id of a radio: the first one's is the field's, so
	// that the error summary's link lands on it.
	"optionID": func(name string, i int) string {
		if i == 0 {
			return "f-" + name
		}
		return "f-" + name + "-" + strconv.Itoa(i+1)
	},
	// partID is the id of a date's day, month or year input; the day's is
	// the field's.
	"partID": func(name string, i int) string {
		return "f-" + name + [...]string{"", "-month", "-year"}[min(i, 2)]
	},
	// textual reports an input that takes maxlength, minlength and pattern.
	"textual": func(f model.PageField) bool {
		switch f.Input {
		case "text", "email", "tel", "url", "search", "password":
			return true
		}
		return false
	},
	// width is a short input's class, so that its size hints at what it
	// takes (a postcode, a year).
	"width": func(f model.PageField) string {
		switch {
		case f.Input == "number":
			return "w10"
		case f.MaxLength > 0 && f.MaxLength <= 5:
			return "w5"
		case f.MaxLength > 0 && f.MaxLength <= 10:
			return "w10"
		case f.MaxLength > 0 && f.MaxLength <= 20:
			return "w20"
		}
		return ""
	},
	"deref": func(p *int64) int64 { return *p },
	// required reports a page with a required field: it explains the mark.
	"required": func(pg *model.Page) bool {
		for _, f := range pg.Fields {
			if f.Required {
				return true
			}
		}
		return false
	},
}

type messageJSON struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

// WantsJSON reports a client that asks for a page's JSON twin.
func WantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// Render writes v as HTML or, when the client asks for it, as JSON.
func (u *UI) Render(w http.ResponseWriter, r *http.Request, status int, v View) {
	h := w.Header()
	if v.Page != nil {
		h.Set(wire.HeaderSeq, strconv.FormatUint(v.Page.Seq, 10))
		if v.Stale {
			h.Set(wire.HeaderStale, "1")
		}
	}
	h.Set("Cache-Control", "no-store")
	if WantsJSON(r) {
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
