package pages_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"understudy/model"
	"understudy/model/modeltest"
	"understudy/pages"
	"understudy/wire"
)

func page(t *testing.T) *model.Page {
	t.Helper()
	ctx := context.Background()
	eng := modeltest.Engine()
	run, _, err := modeltest.Drive(ctx, eng, modeltest.SessionID(1), 1, "vehicle")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := eng.Page(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

// TestRender: a page as HTML or as its JSON twin, with the sequence the
// gateway and the client read in a header; a message without one.
func TestRender(t *testing.T) {
	u, err := pages.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	pg := page(t)
	render := func(accept string, status int, v pages.View) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		w := httptest.NewRecorder()
		u.Render(w, r, status, v)
		return w
	}

	w := render("text/html", http.StatusOK, pages.View{Page: pg, CSRF: "tok", Stale: true})
	if w.Code != http.StatusOK || w.Header().Get(wire.HeaderSeq) != "1" || w.Header().Get(wire.HeaderStale) != "1" {
		t.Fatalf("html: status %d, headers %v", w.Code, w.Header())
	}
	if body := w.Body.String(); !strings.Contains(body, `<input type="hidden" name="_csrf" value="tok">`) || !strings.Contains(body, "<form") {
		t.Fatalf("html page without its form or token:\n%s", body)
	}

	w = render("application/json", http.StatusOK, pages.View{Page: pg, CSRF: "tok"})
	var twin struct {
		Seq  uint64 `json:"seq"`
		CSRF string `json:"csrf"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &twin); err != nil || twin.CSRF != "tok" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("json twin: %v %+v %q", err, twin, w.Body.String())
	}

	w = render("application/json", http.StatusServiceUnavailable, pages.View{Message: "Please try again.", Reason: wire.UnavailableBusy})
	var msg struct{ Error, Reason string }
	if err := json.Unmarshal(w.Body.Bytes(), &msg); err != nil || w.Code != http.StatusServiceUnavailable || msg.Reason != wire.UnavailableBusy || w.Header().Get(wire.HeaderSeq) != "" {
		t.Fatalf("json message: %d %v %+v", w.Code, err, msg)
	}
}

// TestRenderPage: a preview is a document of its own (the style sheet
// inline, nothing linked) that cannot be submitted.
func TestRenderPage(t *testing.T) {
	var b strings.Builder
	if err := pages.RenderPage(&b, page(t), pages.Options{Banner: "Preview of session x"}); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	for _, want := range []string{"Preview of session x", `<fieldset class="preview" disabled>`, "<style>"} {
		if !strings.Contains(doc, want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	if strings.Contains(doc, "/static/style.css") {
		t.Error("preview links the node's style sheet: it must stand alone")
	}
	if err := pages.RenderPage(&b, nil, pages.Options{}); err == nil {
		t.Error("no page: no error")
	}
}
