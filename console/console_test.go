package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/console"
	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/jobs"
	"github.com/llmfleet/llmfleet/tasks"
)

const testToken = "s3cret-console-token"

// testBundle is one test's world: a redis-server, a console on a free
// loopback port, and what the test looks at Redis with.
type testBundle struct {
	rdb  *redis.Client
	srv  *console.Server
	url  string
	deps jobs.Deps
	http *http.Client
}

func setup(t *testing.T, cfg console.Config) *testBundle {
	t.Helper()
	rs := testredis.Start(t)
	rdb := rs.Client(t)
	return startConsole(t, rdb, cfg)
}

func startConsole(t *testing.T, rdb *redis.Client, cfg console.Config) *testBundle {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Redis = rdb
	srv, err := console.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &testBundle{
		rdb: rdb, srv: srv, url: srv.URL(),
		deps: jobs.Deps{Store: checkpoint.New(rdb), Client: asynq.NewClientFromRedisClient(rdb), Inspector: asynq.NewInspectorFromRedisClient(rdb)},
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// req is one request's extras.
type req struct {
	bearer, cookie, origin, contentType, accept string
	body                                        string
}

type resp struct {
	code   int
	body   string
	header http.Header
	cookie []*http.Cookie
}

func (b *testBundle) do(t *testing.T, method, path string, o req) resp {
	t.Helper()
	var body io.Reader
	if o.body != "" {
		body = strings.NewReader(o.body)
	}
	r, err := http.NewRequest(method, b.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if o.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+o.bearer)
	}
	if o.cookie != "" {
		r.Header.Set("Cookie", o.cookie)
	}
	if o.origin != "" {
		r.Header.Set("Origin", o.origin)
	}
	if o.contentType != "" {
		r.Header.Set("Content-Type", o.contentType)
	}
	if o.accept != "" {
		r.Header.Set("Accept", o.accept)
	}
	res, err := b.http.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	bb, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, body: string(bb), header: res.Header, cookie: res.Cookies()}
}

// login posts the token to the login form and returns the cookie header.
func (b *testBundle) login(t *testing.T, token string) (resp, string) {
	t.Helper()
	r := b.do(t, "POST", "/login", req{
		origin: b.url, contentType: "application/x-www-form-urlencoded",
		body: url.Values{"token": {token}, "next": {"/"}}.Encode(),
	})
	for _, c := range r.cookie {
		if c.Name == "llmfleet_console" {
			return r, c.Name + "=" + c.Value
		}
	}
	return r, ""
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, token string
		field       string // "" when valid
	}{
		{"127.0.0.1:8080", "", ""},
		{"localhost:8080", "", ""},
		{"[::1]:8080", "", ""},
		{"127.0.0.2:0", "", ""},
		{"0.0.0.0:8080", "", "Token"},
		{":8080", "", "Token"},
		{"10.1.2.3:8080", "", "Token"},
		{"console.example.com:8080", "", "Token"},
		{"0.0.0.0:8080", testToken, ""},
		{"127.0.0.1", "", "Addr"},
		{"0.0.0.0:8080", "two words", "Token"},
	} {
		cfg := console.Config{Addr: tc.addr, Token: tc.token}
		err := cfg.Validate()
		var ce *console.ConfigError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("Validate(%q, token %v) = %v, want nil", tc.addr, tc.token != "", err)
		case tc.field != "" && (!errors.As(err, &ce) || ce.Field != tc.field):
			t.Errorf("Validate(%q, token %v) = %v, want a ConfigError on %s", tc.addr, tc.token != "", err, tc.field)
		case tc.field == "Token" && tc.token == "" && !errors.Is(err, console.ErrTokenRequired):
			t.Errorf("Validate(%q) = %v, want ErrTokenRequired", tc.addr, err)
		}
	}
	// Start refuses too, before listening.
	if _, err := console.Start(console.Config{Addr: "0.0.0.0:0"}); !errors.Is(err, console.ErrTokenRequired) {
		t.Errorf("Start on 0.0.0.0 without a token: %v, want ErrTokenRequired", err)
	}
}

// routes are every route of the console, the asynqmon ones included.
var routes = []struct{ method, path string }{
	{"GET", "/"},
	{"GET", "/partials/jobs"},
	{"GET", "/partials/inbox"},
	{"GET", "/api/jobs"},
	{"GET", "/api/jobs/j1"},
	{"GET", "/api/jobs/j1/inbox"},
	{"POST", "/api/jobs/j1/respond"},
	{"POST", "/logout/../api/jobs/j1/respond"},
	{"GET", "/asynqmon"},
	{"GET", "/asynqmon/"},
	{"GET", "/asynqmon/queues/default"},
	{"GET", "/asynqmon/api/queues"},
	{"GET", "/asynqmon/api/queues/default/archived_tasks"},
	{"POST", "/asynqmon/api/queues/default:pause"},
	{"DELETE", "/asynqmon/api/queues/default"},
	{"GET", "/no/such/page"},
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, console.Config{Token: testToken})
	submit(t, b, "j1", 3)

	t.Run("EveryRouteNeedsTheToken", func(t *testing.T) {
		for _, rt := range routes {
			for name, o := range map[string]req{
				"nothing":      {},
				"wrong bearer": {bearer: "not-" + testToken},
				"token prefix": {bearer: testToken[:len(testToken)-1]},
				"token cookie": {cookie: "llmfleet_console=" + testToken},
				"html":         {accept: "text/html"},
			} {
				o.origin = b.url
				if r := b.do(t, rt.method, rt.path, o); r.code != http.StatusUnauthorized {
					t.Errorf("%s %s with %s: %d, want 401", rt.method, rt.path, name, r.code)
				}
			}
		}
		// The page's own stylesheet and script are served to anyone (the
		// login page needs them), and hold nothing of the fleet.
		if r := b.do(t, "GET", "/static/console.css", req{}); r.code != http.StatusOK {
			t.Errorf("GET /static/console.css without a token: %d, want 200", r.code)
		}
		if r := b.do(t, "GET", "/static/../api/jobs", req{}); r.code == http.StatusOK {
			t.Errorf("GET /static/../api/jobs without a token: %d, want it refused", r.code)
		}
		// A browser gets the login form with its 401.
		r := b.do(t, "GET", "/api/jobs", req{accept: "text/html"})
		if !strings.Contains(r.body, `action="/login"`) || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 to a browser: %q (WWW-Authenticate %q), want the login form", r.body, r.header.Get("WWW-Authenticate"))
		}
		if strings.Contains(r.body, "j1") {
			t.Errorf("the login page shows job data: %s", r.body)
		}
	})

	t.Run("Bearer", func(t *testing.T) {
		for _, rt := range routes {
			if rt.method != "GET" {
				continue
			}
			r := b.do(t, rt.method, rt.path, req{bearer: testToken})
			want := http.StatusOK
			switch rt.path {
			case "/no/such/page":
				want = http.StatusNotFound
			case "/asynqmon":
				want = http.StatusMovedPermanently
			}
			if r.code != want {
				t.Errorf("GET %s with the bearer token: %d %s, want %d", rt.path, r.code, r.body, want)
			}
		}
	})

	t.Run("LoginForm", func(t *testing.T) {
		r, cookie := b.login(t, "wrong")
		if r.code != http.StatusUnauthorized || cookie != "" {
			t.Errorf("login with a wrong token: %d, cookie %q; want 401 and no cookie", r.code, cookie)
		}
		r, cookie = b.login(t, testToken)
		if r.code != http.StatusSeeOther || cookie == "" {
			t.Fatalf("login: %d, cookie %q; want 303 and a cookie", r.code, cookie)
		}
		var c *http.Cookie
		for _, x := range r.cookie {
			if x.Name == "llmfleet_console" {
				c = x
			}
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
		}
		if strings.Contains(c.Value, testToken) || strings.Contains(c.Raw, testToken) {
			t.Errorf("the cookie holds the token: %q", c.Raw)
		}
		for _, path := range []string{"/", "/api/jobs", "/asynqmon/", "/asynqmon/api/queues"} {
			if r := b.do(t, "GET", path, req{cookie: cookie}); r.code != http.StatusOK {
				t.Errorf("GET %s with the session cookie: %d", path, r.code)
			}
		}
		// A cookie of another console (another key) does not work here.
		other := startConsole(t, b.rdb, console.Config{Token: testToken})
		_, otherCookie := other.login(t, testToken)
		if otherCookie == cookie {
			t.Error("two consoles with one token issue the same cookie: the key is not per process")
		}
		if r := b.do(t, "GET", "/api/jobs", req{cookie: otherCookie}); r.code != http.StatusUnauthorized {
			t.Errorf("another console's cookie: %d, want 401", r.code)
		}
		// Logging in from another site is refused.
		r = b.do(t, "POST", "/login", req{origin: "https://evil.example", contentType: "application/x-www-form-urlencoded", body: "token=" + testToken})
		if r.code != http.StatusForbidden {
			t.Errorf("cross-origin login: %d, want 403", r.code)
		}
		// After login, the redirect stays on the console.
		r = b.do(t, "POST", "/login", req{origin: b.url, contentType: "application/x-www-form-urlencoded",
			body: url.Values{"token": {testToken}, "next": {"//evil.example/x"}}.Encode()})
		if loc := r.header.Get("Location"); loc != "/" {
			t.Errorf("login with next=//evil.example/x redirects to %q, want /", loc)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		_, cookie := b.login(t, testToken)
		body := `{"item":"i0","decision":"approve"}`
		for name, o := range map[string]req{
			"no origin":    {cookie: cookie, contentType: "application/json", body: body},
			"other origin": {cookie: cookie, contentType: "application/json", body: body, origin: "http://evil.example"},
		} {
			if r := b.do(t, "POST", "/api/jobs/j1/respond", o); r.code != http.StatusForbidden {
				t.Errorf("respond with the cookie and %s: %d, want 403", name, r.code)
			}
			if r := b.do(t, "POST", "/asynqmon/api/queues/default:pause", o); r.code != http.StatusForbidden {
				t.Errorf("asynqmon pause with the cookie and %s: %d, want 403", name, r.code)
			}
		}
		// Same origin gets through to the handler (j1 has no tools: 400).
		r := b.do(t, "POST", "/api/jobs/j1/respond", req{cookie: cookie, contentType: "application/json", body: body, origin: b.url})
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, "no tools") {
			t.Errorf("same-origin respond: %d %q, want 400 (job has no tools)", r.code, r.body)
		}
	})
}

// Without a token the console answers loopback names only.
func TestNoTokenLoopbackOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, console.Config{})
	if r := b.do(t, "GET", "/api/jobs", req{}); r.code != http.StatusOK {
		t.Errorf("GET /api/jobs on loopback without a token: %d", r.code)
	}
	r, err := http.NewRequest("GET", b.url+"/api/jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = "rebound.example:8080"
	res, err := b.http.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("Host rebound.example: %d, want 403 (DNS rebinding)", res.StatusCode)
	}
	// Changes still need the console's own origin.
	if r := b.do(t, "POST", "/asynqmon/api/queues/default:pause", req{}); r.code != http.StatusForbidden {
		t.Errorf("POST without an origin: %d, want 403", r.code)
	}
}

func TestAsynqmon(t *testing.T) {
	t.Parallel()
	b := setup(t, console.Config{Token: testToken})
	if _, err := b.deps.Client.Enqueue(asynq.NewTask("llm:item", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	r := b.do(t, "GET", "/asynqmon/api/queues", req{bearer: testToken})
	var got struct {
		Queues []struct {
			Queue   string `json:"queue"`
			Pending int    `json:"pending"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != 200 {
		t.Fatalf("GET /asynqmon/api/queues: %d %q (%v)", r.code, r.body, err)
	}
	if len(got.Queues) != 1 || got.Queues[0].Queue != "default" || got.Queues[0].Pending != 1 {
		t.Errorf("asynqmon lists %+v, want the default queue with 1 pending task", got.Queues)
	}
	// The UI is asynqmon's, rooted under /asynqmon.
	r = b.do(t, "GET", "/asynqmon/", req{bearer: testToken})
	if !strings.Contains(r.body, `href="/asynqmon/favicon.ico"`) || !strings.Contains(r.body, "/asynqmon/static/js/") {
		t.Errorf("/asynqmon/ is not asynqmon's UI rooted at /asynqmon: %.300s", r.body)
	}
	// Writes go through (not read-only), with the bearer token.
	r = b.do(t, "POST", "/asynqmon/api/queues/default:pause", req{bearer: testToken})
	if r.code != http.StatusNoContent && r.code != http.StatusOK {
		t.Errorf("pause: %d %s", r.code, r.body)
	}
	if q, err := b.deps.Inspector.GetQueueInfo("default"); err != nil || !q.Paused {
		t.Errorf("after asynqmon's pause: %+v %v, want the queue paused", q, err)
	}
	// Shutdown leaves the fleet's connection open.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		t.Errorf("after Shutdown, the fleet's Redis connection: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, console.Config{Token: testToken, ReadOnly: true})
	parked(t, b, "ro")
	_, cookie := b.login(t, testToken)
	body := `{"item":"i0","decision":"approve"}`
	for name, o := range map[string]req{
		"bearer": {bearer: testToken, contentType: "application/json", body: body},
		"cookie": {cookie: cookie, origin: b.url, contentType: "application/json", body: body},
	} {
		if r := b.do(t, "POST", "/api/jobs/ro/respond", o); r.code != http.StatusForbidden {
			t.Errorf("read-only respond with %s: %d, want 403", name, r.code)
		}
		if r := b.do(t, "POST", "/asynqmon/api/queues/default:pause", o); r.code != http.StatusForbidden {
			t.Errorf("read-only asynqmon pause with %s: %d, want 403", name, r.code)
		}
		if r := b.do(t, "DELETE", "/asynqmon/api/queues/default", o); r.code != http.StatusForbidden {
			t.Errorf("read-only asynqmon delete queue with %s: %d, want 403", name, r.code)
		}
	}
	if v, err := b.deps.Store.Item(context.Background(), "ro", "i0"); err != nil || v.Status != checkpoint.ItemAwaiting {
		t.Errorf("after read-only refusals item i0 is %v (%v), want still awaiting_input", v.Status, err)
	}
	if q, err := b.deps.Inspector.GetQueueInfo("default"); err != nil || q.Paused {
		t.Errorf("after read-only refusals the queue is %+v (%v), want not paused", q, err)
	}
	// Reading works; the page shows the request without forms.
	r := b.do(t, "GET", "/", req{bearer: testToken})
	if r.code != 200 || !strings.Contains(r.body, `data-item="i0"`) || strings.Contains(r.body, `name="decision"`) {
		t.Errorf("read-only page: %d, want the request i0 without answer forms:\n%s", r.code, r.body)
	}
}

// submit records n plain items of job (no worker runs them).
func submit(t *testing.T, b *testBundle, job string, n int, pol ...checkpoint.Policy) {
	t.Helper()
	p := checkpoint.Policy{Model: "gpt-4o-mini", Queue: "default", MaxAttempts: 3, BackoffMin: time.Second, BackoffMax: time.Minute, Timeout: time.Minute, Retention: time.Hour}
	if len(pol) > 0 {
		p = pol[0]
	}
	var lines []string
	for i := range n {
		lines = append(lines, `{"id":"i`+string(rune('0'+i))+`","prompt":"hello"}`)
	}
	sum, err := jobs.Submit(context.Background(), b.deps, jobs.SubmitOptions{
		Job: job, Input: strings.NewReader(strings.Join(lines, "\n") + "\n"), InputName: job + ".jsonl",
		Policy: p, Changed: func(string) bool { return false }, MaxItemBytes: 1 << 20,
	})
	if err != nil || sum.Enqueued != n {
		t.Fatalf("submit %s: %+v %v", job, sum, err)
	}
}

// evilQuestion is a question a model could write: the page must show it as
// text.
const evilQuestion = `<script>alert('x')</script> which volume?`

// parked submits job with one agent item i0 and parks it, as a worker
// would, on a call to clean_logs, which needs approval, or with question
// on a call to ask_human, a question for a person.
func parked(t *testing.T, b *testBundle, job string, question ...string) agent.Request {
	t.Helper()
	tools := []agent.Tool{{Name: "clean_logs", Description: "Delete old logs", Parameters: json.RawMessage(`{"type":"object"}`),
		URL: "http://tools.internal/clean_logs", Approval: agent.ApprovalAlways},
		{Name: "ask_human", Description: "Ask the operator", Executor: agent.ExecutorHuman}}
	p := checkpoint.Policy{Model: "gpt-4o-mini", Queue: "default", MaxAttempts: 3, BackoffMin: time.Second, BackoffMax: time.Minute,
		Timeout: time.Minute, Retention: time.Hour, Tools: tools, MaxSteps: 4, MaxTranscriptBytes: checkpoint.DefaultMaxTranscriptBytes}
	submit(t, b, job, 1, p)
	ctx := context.Background()
	if _, err := b.deps.Store.Begin(ctx, job, "i0", "tok", false); err != nil {
		t.Fatal(err)
	}
	call := tasks.ToolCall{ID: "call_1", Type: "function", Function: tasks.FunctionCall{Name: "clean_logs", Arguments: `{"days":7}`}}
	r := agent.NewRequest(&tools[0], call, 1, time.Now())
	if len(question) > 0 {
		q, _ := json.Marshal(map[string]string{"question": question[0]})
		call = tasks.ToolCall{ID: "call_1", Type: "function", Function: tasks.FunctionCall{Name: "ask_human", Arguments: string(q)}}
		r = agent.NewRequest(&tools[1], call, 1, time.Now())
	}
	if err := b.deps.Store.Park(ctx, job, "i0", "tok", []agent.Request{r}, true); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInbox(t *testing.T) {
	t.Parallel()

	t.Run("ShownEscaped", func(t *testing.T) {
		t.Parallel()
		b := setup(t, console.Config{Token: testToken})
		parked(t, b, "ask")
		r := b.do(t, "GET", "/api/jobs/ask/inbox", req{bearer: testToken})
		var in []jobs.InboxEntry
		if err := json.Unmarshal([]byte(r.body), &in); err != nil || len(in) != 1 || in[0].Item != "i0" || in[0].ID != "call_1" || in[0].Kind != agent.KindApproval {
			t.Fatalf("inbox: %d %s (%v), want item i0's request call_1", r.code, r.body, err)
		}
		var v console.JobView
		r = b.do(t, "GET", "/api/jobs/ask", req{bearer: testToken})
		if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.AwaitingInput != 1 || len(v.Inbox) != 1 {
			t.Fatalf("job: %s (%v), want 1 awaiting input with its request", r.body, err)
		}
		parked(t, b, "q", evilQuestion)
		page := b.do(t, "GET", "/", req{bearer: testToken}).body
		if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; which volume?") {
			t.Errorf("the page does not show the question escaped:\n%s", page)
		}
		for _, want := range []string{`value="approve"`, `value="reject"`, `value="edit"`, `value="answer"`, `action="/api/jobs/ask/respond"`, `action="/api/jobs/q/respond"`} {
			if !strings.Contains(page, want) {
				t.Errorf("the page has no %s", want)
			}
		}
		if r := b.do(t, "GET", "/api/jobs/nope", req{bearer: testToken}); r.code != http.StatusNotFound {
			t.Errorf("unknown job: %d, want 404", r.code)
		}
		if r := b.do(t, "GET", "/api/jobs/%7Bbad%7D", req{bearer: testToken}); r.code != http.StatusBadRequest {
			t.Errorf("bad job name: %d, want 400", r.code)
		}
	})

	t.Run("ApproveFromTheForm", func(t *testing.T) {
		t.Parallel()
		b := setup(t, console.Config{Token: testToken})
		parked(t, b, "ask")
		_, cookie := b.login(t, testToken)
		r := b.do(t, "POST", "/api/jobs/ask/respond", req{
			cookie: cookie, origin: b.url, contentType: "application/x-www-form-urlencoded",
			body: url.Values{"item": {"i0"}, "request": {"call_1"}, "decision": {"approve"}}.Encode(),
		})
		if r.code != http.StatusSeeOther {
			t.Fatalf("form approve: %d %s", r.code, r.body)
		}
		loc, _ := url.Parse(r.header.Get("Location"))
		if n := loc.Query().Get("notice"); !strings.Contains(n, "1 recorded") || !strings.Contains(n, "1 items resumed") {
			t.Errorf("after approving, the page says %q", n)
		}
		requireResumed(t, b, "ask", "i0", agent.DecideApprove)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t, console.Config{Token: testToken})
		parked(t, b, "ask")
		// A bad answer is rejected by jobs.Respond and changes nothing.
		r := b.do(t, "POST", "/api/jobs/ask/respond", req{bearer: testToken, contentType: "application/json",
			body: `[{"item":"i0","decision":"answer","answer":"x"},{"item":"nope","decision":"approve"}]`})
		var sum jobs.RespondSummary
		if err := json.Unmarshal([]byte(r.body), &sum); err != nil || r.code != 200 || sum.Rejected != 2 || sum.Applied != 0 {
			t.Fatalf("bad answers: %d %s, want 2 rejected", r.code, r.body)
		}
		if r := b.do(t, "POST", "/api/jobs/ask/respond", req{bearer: testToken, contentType: "application/json", body: `{"item":"i0","decision":"approve","extra":1}`}); r.code != http.StatusBadRequest {
			t.Errorf("unknown field: %d, want 400", r.code)
		}
		r = b.do(t, "POST", "/api/jobs/ask/respond", req{bearer: testToken, contentType: "application/json",
			body: `{"item":"i0","decision":"reject","message":"not today"}`})
		if err := json.Unmarshal([]byte(r.body), &sum); err != nil || sum.Applied != 1 || sum.Resumed != 1 {
			t.Fatalf("reject: %d %s, want 1 applied, 1 resumed", r.code, r.body)
		}
		requireResumed(t, b, "ask", "i0", agent.DecideReject)
	})
}

// requireResumed checks that the item's request was decided as want, the
// item is pending again and its task is queued.
func requireResumed(t *testing.T, b *testBundle, job, id string, want agent.DecisionKind) {
	t.Helper()
	ctx := context.Background()
	reqs, _, err := b.deps.Store.Requests(ctx, job, id)
	if err != nil || len(reqs) != 1 || reqs[0].Decision == nil || reqs[0].Decision.Decision != want {
		t.Fatalf("requests of %s: %+v (%v), want one decided %s", id, reqs, err, want)
	}
	if v, err := b.deps.Store.Item(ctx, job, id); err != nil || v.Status != checkpoint.ItemPending {
		t.Errorf("item %s is %v (%v), want pending", id, v.Status, err)
	}
	info, err := b.deps.Inspector.GetTaskInfo("default", tasks.TaskID(job, id))
	if err != nil || !slices.Contains([]asynq.TaskState{asynq.TaskStatePending, asynq.TaskStateActive}, info.State) {
		t.Errorf("task of %s: %+v (%v), want pending", id, info, err)
	}
}

// The jobs list: progress, failures by class, rate.
func TestJobsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, console.Config{Token: testToken})
	submit(t, b, "j1", 5)
	ctx := context.Background()
	for _, id := range []string{"i0", "i1"} {
		if _, err := b.deps.Store.Begin(ctx, "j1", id, "tok-"+id, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.deps.Store.Fail(ctx, "j1", "i0", "tok-i0", checkpoint.Failure{Class: "bad_request", Reason: "400 <b>bold</b>", Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.deps.Store.Fail(ctx, "j1", "i1", "tok-i1", checkpoint.Failure{Class: "auth", Reason: "401", Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	r := b.do(t, "GET", "/api/jobs", req{bearer: testToken})
	var got struct {
		Jobs []console.JobView `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || len(got.Jobs) != 1 {
		t.Fatalf("/api/jobs: %d %s (%v)", r.code, r.body, err)
	}
	v := got.Jobs[0]
	if v.Job != "j1" || v.Total != 5 || v.Failed != 2 || v.Finished != 2 || v.Breaker != "closed" {
		t.Errorf("job %+v, want j1 with 5 items, 2 failed, breaker closed", v.Status)
	}
	if v.FailuresByClass["bad_request"] != 1 || v.FailuresByClass["auth"] != 1 || len(v.FailuresByClass) != 2 {
		t.Errorf("failures by class %v, want bad_request 1, auth 1", v.FailuresByClass)
	}
	if v.RatePerSec == nil {
		t.Error("no rate for a started job")
	}
	page := b.do(t, "GET", "/partials/jobs", req{bearer: testToken}).body
	for _, want := range []string{`<tr data-job="j1">`, `<progress max="5" value="2">`, "bad_request", `class="failed">2<`} {
		if !strings.Contains(page, want) {
			t.Errorf("jobs table has no %q:\n%s", want, page)
		}
	}
}
