package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/llmfleet/llmfleet/jobs"
)

//go:embed templates/*.html
var templateFS embed.FS

// staticFS holds static/, served at /static/.
//
//go:embed static
var staticFS embed.FS

// csp keeps the console's own pages to their own script and style (asynqmon's
// index has inline scripts, so its pages do not get it).
const csp = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

type pages struct{ t *template.Template }

func newPages() (*pages, error) {
	t, err := template.New("").Funcs(template.FuncMap{
		"rate": func(r *float64) string {
			if r == nil {
				return "—"
			}
			return fmt.Sprintf("%.1f/s", *r)
		},
		"eta": func(v JobView) string {
			switch {
			case v.Ended():
				return "ended"
			case v.ETASeconds == nil:
				return "—"
			}
			d := time.Duration(*v.ETASeconds * float64(time.Second)).Round(time.Second)
			return fmt.Sprintf("in %s (%s UTC)", d, v.ETA.Format("15:04:05"))
		},
		"cost":       func(usd float64) string { return fmt.Sprintf("$%.4f", usd) },
		"respondURL": func(job string) string { return "/api/jobs/" + url.PathEscape(job) + "/respond" },
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	return &pages{t: t}, nil
}

// pageData is what the templates show.
type pageData struct {
	Jobs      []JobView
	Inbox     []inboxRow
	InboxMore int
	InboxSig  string
	ReadOnly  bool
	Token     bool
	Notice    string
	RefreshMS int64
}

type inboxRow struct {
	Job string
	jobs.InboxEntry
}

func (c *console) pageData(r *http.Request) (pageData, error) {
	vs, err := c.views(r.Context())
	if err != nil {
		return pageData{}, err
	}
	d := pageData{Jobs: vs, ReadOnly: c.cfg.ReadOnly, Token: c.auth.required(), RefreshMS: c.cfg.Refresh.Milliseconds()}
	sig := sha256.New()
	for _, v := range vs {
		for i, e := range v.Inbox {
			if i >= maxInboxShown {
				d.InboxMore += len(v.Inbox) - i
				break
			}
			d.Inbox = append(d.Inbox, inboxRow{Job: v.Job, InboxEntry: e})
			fmt.Fprintf(sig, "%s\x00%s\x00%s\x00", v.Job, e.Item, e.ID)
		}
	}
	d.InboxSig = hex.EncodeToString(sig.Sum(nil)[:8])
	return d, nil
}

func (p *pages) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := p.t.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func (p *pages) login(w http.ResponseWriter, code int, next, msg string) {
	p.render(w, code, "login", struct{ Next, Error string }{safeNext(next), msg})
}

func (c *console) jobsPage(w http.ResponseWriter, r *http.Request) {
	d, err := c.pageData(r)
	if err != nil {
		c.httpError(w, r, err)
		return
	}
	d.Notice = r.URL.Query().Get("notice")
	c.pages.render(w, http.StatusOK, "page", d)
}

func (c *console) jobsPartial(w http.ResponseWriter, r *http.Request) {
	d, err := c.pageData(r)
	if err != nil {
		c.httpError(w, r, err)
		return
	}
	c.pages.render(w, http.StatusOK, "jobs", d)
}

func (c *console) inboxPartial(w http.ResponseWriter, r *http.Request) {
	d, err := c.pageData(r)
	if err != nil {
		c.httpError(w, r, err)
		return
	}
	c.pages.render(w, http.StatusOK, "inbox", d)
}
