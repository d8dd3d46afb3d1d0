package pages

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"unicode"

	"understudy/model"
)

// Options says how RenderPage and RenderText show a page outside a
// running node.
type Options struct {
	// Label returns how users see an entity reference in a summary
	// (model.Engine.EntityLabel of the run the page came from). Nil shows
	// the reference itself.
	Label func(model.Ref) string

	// Banner is a line shown above the page, saying what the preview is
	// ("Preview of session … at interaction 3"). Empty: none.
	Banner string

	// Values adds everything collected so far below a page that is still
	// waiting for the user (a finished page always shows it).
	Values bool

	// Templates are the application's own templates (Config.Templates),
	// for steps that name one. Nil: every step is rendered generically.
	Templates *template.Template

	// Answers is what the user answered so far (model.Engine.Answers of
	// the run the page came from): the HTML summary page of a finished
	// session lists it, and the text lists it under the page (with
	// Values) or as the summary, in the words the user saw. Nil: the text
	// shows the values collected, by their names.
	Answers []model.Answered
}

// RenderPage writes pg as a standalone HTML document: the page a node
// would have served for it, through the same templates, with the style
// sheet inline (the document needs no server), no CSRF token, and every
// form control disabled, since a preview must not look like it could be
// submitted. The replay tool uses it to show what a user saw.
func RenderPage(w io.Writer, pg *model.Page, opts Options) error {
	if pg == nil {
		return fmt.Errorf("render page: no page")
	}
	u, err := New(opts.Templates)
	if err != nil {
		return err
	}
	t, err := u.tmpl.Clone()
	if err != nil {
		return err
	}
	// The layout's head links /static/style.css and opens <main>: a
	// preview inlines the sheet and wraps the page in a disabled fieldset.
	_, err = t.New("preview-layout").Funcs(template.FuncMap{
		"css":    func() template.CSS { return template.CSS(u.css) },
		"banner": func() string { return opts.Banner },
	}).Parse(previewLayout)
	if err != nil {
		return fmt.Errorf("preview templates: %w", err)
	}
	v := View{Page: pg, Answers: opts.Answers}
	name := "page.html"
	switch {
	case pg.Finished:
		name = "summary.html"
	case pg.Template != "" && opts.Templates != nil && opts.Templates.Lookup(pg.Template) != nil:
		// An application's own template keeps its own layout.
		t, name = opts.Templates, pg.Template
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, v); err != nil {
		return fmt.Errorf("render page %s: %w", pg.Step, err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// previewLayout replaces the layout's head and foot for RenderPage.
const previewLayout = `{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} (preview)</title>
<style>
{{css}}
.preview-banner { margin: 0 0 1rem; padding: .5rem .75rem; background: #fff6d6; border: 1px solid #e8d48a; border-radius: 6px; font-size: .9rem; }
fieldset.preview { border: 0; margin: 0; padding: 0; min-width: 0; }
</style>
</head>
<body>
<main>
{{with banner}}<p class="preview-banner" role="note">{{.}}</p>
{{end}}<fieldset class="preview" disabled>
{{end}}
{{define "foot"}}</fieldset>
</main>
</body>
</html>
{{end}}`

// RenderText writes pg as plain text for a terminal: the application and
// step titles, each field with its label and the value the form held
// (the selected option's label for a choice), field errors, and for a
// finished application the summary of everything collected.
func RenderText(w io.Writer, pg *model.Page, opts Options) error {
	if pg == nil {
		return fmt.Errorf("render page: no page")
	}
	var b strings.Builder
	if opts.Banner != "" {
		b.WriteString(opts.Banner)
		b.WriteString("\n\n")
	}
	b.WriteString(pg.Title)
	b.WriteString("\n")
	if pg.Finished {
		heading := pg.StepTitle
		if heading == "" {
			heading = "Thank you — all done"
		}
		fmt.Fprintf(&b, "== %s ==\n\n", heading)
		writeShown(&b, pg.Display)
		if len(pg.Next) > 0 {
			b.WriteString("What happens next:\n")
			for _, p := range pg.Next {
				fmt.Fprintf(&b, "  %s\n", p)
			}
			b.WriteString("\n")
		}
		if opts.Answers != nil {
			writeAnswers(&b, opts.Answers)
		} else {
			writeItems(&b, summaryItems(pg.Values, opts.Label), "  ")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "== %s ==\n", pg.StepTitle)
	if pg.Intro != "" {
		b.WriteString(pg.Intro)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	if pg.Back {
		b.WriteString("  [Back]\n\n")
	}
	writeShown(&b, pg.Display)
	if len(pg.Review) > 0 {
		writeAnswers(&b, pg.Review)
	}
	width := 0
	for _, f := range pg.Fields {
		width = max(width, len([]rune(fieldLabel(f))))
	}
	for _, f := range pg.Fields {
		label := fieldLabel(f)
		fmt.Fprintf(&b, "  %s%s  %s\n", label, strings.Repeat(" ", width-len([]rune(label))), fieldText(f))
		if f.Error != "" {
			fmt.Fprintf(&b, "  %s  ! %s\n", strings.Repeat(" ", width), f.Error)
		}
	}
	b.WriteString("\n  [Continue]\n")
	if opts.Values && opts.Answers != nil && len(pg.Review) == 0 {
		if len(opts.Answers) > 0 {
			b.WriteString("\nAnswered so far:\n")
			writeAnswers(&b, opts.Answers)
		}
	} else if opts.Values && opts.Answers == nil {
		if items := summaryItems(pg.Values, opts.Label); len(items) > 0 {
			b.WriteString("\nCollected so far:\n")
			writeItems(&b, items, "  ")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeShown writes the values a page displays.
func writeShown(b *strings.Builder, shown []model.Shown) {
	if len(shown) == 0 {
		return
	}
	for _, d := range shown {
		fmt.Fprintf(b, "  %s: %s\n", d.Label, d.Value)
	}
	b.WriteString("\n")
}

// writeAnswers writes answered pages as a summary shows them: each page's
// heading, then its questions' labels and the answers in words.
func writeAnswers(b *strings.Builder, answers []model.Answered) {
	for _, a := range answers {
		fmt.Fprintf(b, "  %s\n", a.Title)
		for _, f := range a.Fields {
			if f.Value != "" {
				fmt.Fprintf(b, "    %s: %s\n", f.Label, f.Value)
			}
		}
	}
}

func fieldLabel(f model.PageField) string {
	if f.Required {
		return f.Label + " *"
	}
	return f.Label
}

// fieldText is a field as a form shows it.
func fieldText(f model.PageField) string {
	switch f.Type {
	case "bool":
		if f.Value == "on" {
			return "[x]"
		}
		return "[ ]"
	case "date":
		if len(f.Parts) == 3 && f.Parts[0].Value+f.Parts[1].Value+f.Parts[2].Value != "" {
			return "[" + f.Parts[0].Value + "] [" + f.Parts[1].Value + "] [" + f.Parts[2].Value + "]  (day, month, year)"
		}
	case "choice", "entity":
		chosen := "(none chosen)"
		for _, o := range f.Options {
			if o.Value == f.Value && f.Value != "" {
				chosen = o.Label
			}
		}
		if f.Value != "" && chosen == "(none chosen)" {
			chosen = f.Value + " (not among the options)"
		}
		return fmt.Sprintf("%s  (one of %d)", chosen, len(f.Options))
	}
	if f.Value == "" {
		return "[ ]"
	}
	return "[" + f.Value + "]"
}

func writeItems(b *strings.Builder, items []item, indent string) {
	for _, it := range items {
		if len(it.Children) > 0 {
			fmt.Fprintf(b, "%s%s:\n", indent, it.Label)
			writeItems(b, it.Children, indent+"  ")
			continue
		}
		fmt.Fprintf(b, "%s%s: %s\n", indent, it.Label, it.Value)
	}
}

// summaryItems is Node.summarize for a page rendered without a node: an
// entity is shown by label(ref) rather than by the node's engine.
// Steps that collected nothing yet (empty maps and lists) are left out.
func summaryItems(v model.Value, label func(model.Ref) string) []item {
	var out []item
	for _, e := range v.Entries() {
		if k := e.Value.Kind(); (k == model.KindMap || k == model.KindList) && e.Value.Len() == 0 {
			continue
		}
		out = append(out, summaryValue(human(e.Name), e.Value, label))
	}
	return out
}

func summaryValue(name string, v model.Value, label func(model.Ref) string) item {
	switch v.Kind() {
	case model.KindMap:
		return item{Label: name, Children: summaryItems(v, label)}
	case model.KindList:
		it := item{Label: name}
		for i := range v.Len() {
			it.Children = append(it.Children, summaryValue(strconv.Itoa(i+1), v.Index(i), label))
		}
		return it
	case model.KindRef:
		ref, _ := v.Ref()
		if label != nil {
			return item{Label: name, Value: label(ref)}
		}
		return item{Label: name, Value: ref.String()}
	case model.KindBytes:
		return item{Label: name, Value: "(recorded)"}
	}
	return item{Label: name, Value: v.String()}
}

// item is one line of a text summary: a label and a value, or a group.
type item struct {
	Label    string
	Value    string
	Children []item
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
