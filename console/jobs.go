package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/jobs"
)

// JobView is a job as the console shows it: its status and what the
// console measures of it.
type JobView struct {
	jobs.Status
	// Finished is done + failed.
	Finished int64 `json:"finished"`
	// RatePerSec is items finished per second, recently; nil when unknown.
	RatePerSec *float64 `json:"rate_per_sec"`
	// ETA is when the items not finished will be at that rate (nil when
	// the job has ended or nothing moves).
	ETA        *time.Time `json:"eta,omitempty"`
	ETASeconds *float64   `json:"eta_seconds,omitempty"`
	// FailuresByClass counts failed items by error class.
	FailuresByClass map[string]int `json:"failures_by_class"`
	// Inbox is the requests waiting for a person (only in /api/jobs/{job}
	// and on the page).
	Inbox []jobs.InboxEntry `json:"inbox,omitempty"`
}

// maxInboxShown bounds the requests the page shows per job.
const maxInboxShown = 100

// view loads one job and measures it.
func (c *console) view(ctx context.Context, name string) (JobView, error) {
	s, err := jobs.Load(ctx, c.deps.Store, name)
	if err != nil {
		return JobView{}, err
	}
	v := JobView{Status: s, Finished: s.Done + s.Failed}
	now := c.rates.now()
	v.RatePerSec = c.rates.observe(s, now)
	if v.RatePerSec != nil && *v.RatePerSec > 0 && !s.Ended() {
		secs := float64(s.Total-v.Finished) / *v.RatePerSec
		eta := now.Add(time.Duration(secs * float64(time.Second))).UTC().Truncate(time.Second)
		v.ETA, v.ETASeconds = &eta, &secs
	}
	if v.FailuresByClass, err = c.classes.counts(ctx, c.deps.Store, s); err != nil {
		return v, err
	}
	if s.AwaitingInput > 0 {
		if v.Inbox, err = jobs.Inbox(ctx, c.deps.Store, name); err != nil {
			return v, err
		}
	}
	return v, nil
}

// views loads every job, by name.
func (c *console) views(ctx context.Context) ([]JobView, error) {
	js, err := c.deps.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(js, func(a, b int) bool { return js[a].Name < js[b].Name })
	out := make([]JobView, 0, len(js))
	seen := map[string]bool{}
	for _, j := range js {
		v, err := c.view(ctx, j.Name)
		if jobs.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		seen[j.Name] = true
		out = append(out, v)
	}
	c.rates.keep(seen)
	c.classes.keep(seen)
	return out, nil
}

// rates measures each job's items finished per second from the snapshots
// the console takes of it.
type rates struct {
	now   func() time.Time
	mu    sync.Mutex
	byJob map[string][]sample
}

type sample struct {
	at       time.Time
	finished int64
}

// Rates are measured over rateWindow, from snapshots at least sampleEvery
// apart.
const (
	rateWindow  = time.Minute
	sampleEvery = 500 * time.Millisecond
	minRateSpan = time.Second
)

func newRates(now func() time.Time) *rates {
	return &rates{now: now, byJob: map[string][]sample{}}
}

func (r *rates) observe(s jobs.Status, now time.Time) *float64 {
	finished := s.Done + s.Failed
	if s.Ended() && s.StartedAt != nil && s.FinishedAt != nil {
		// Over: the rate of the whole run.
		if d := s.FinishedAt.Sub(*s.StartedAt).Seconds(); d > 0 {
			rate := float64(finished) / d
			return &rate
		}
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.byJob[s.Job]
	if n := len(ss); n > 0 && finished < ss[n-1].finished {
		ss = nil // replayed: counts went back
	}
	if n := len(ss); n == 0 || now.Sub(ss[n-1].at) >= sampleEvery {
		ss = append(ss, sample{now, finished})
	}
	for len(ss) > 2 && now.Sub(ss[1].at) > rateWindow {
		ss = ss[1:]
	}
	r.byJob[s.Job] = ss
	if first := ss[0]; now.Sub(first.at) >= minRateSpan {
		rate := float64(finished-first.finished) / now.Sub(first.at).Seconds()
		return &rate
	}
	if s.StartedAt != nil {
		if d := now.Sub(*s.StartedAt).Seconds(); d > 0 {
			rate := float64(finished) / d
			return &rate
		}
	}
	return nil
}

// keep forgets the jobs not in seen (deleted or expired).
func (r *rates) keep(seen map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j := range r.byJob {
		if !seen[j] {
			delete(r.byJob, j)
		}
	}
}

// classCache keeps each job's failures per class (see the package doc for
// when they are counted again).
type classCache struct {
	now   func() time.Time
	mu    sync.Mutex
	byJob map[string]classCount
}

type classCount struct {
	failed int64
	counts map[string]int
	next   time.Time
}

// walkShare is the inverse of the share of time spent walking failures.
const walkShare = 10

func newClassCache(now func() time.Time) *classCache {
	return &classCache{now: now, byJob: map[string]classCount{}}
}

func (c *classCache) counts(ctx context.Context, store *checkpoint.Store, s jobs.Status) (map[string]int, error) {
	if s.Failed == 0 {
		return map[string]int{}, nil
	}
	start := c.now()
	c.mu.Lock()
	cc, ok := c.byJob[s.Job]
	c.mu.Unlock()
	if ok && (cc.failed == s.Failed || start.Before(cc.next)) {
		return cc.counts, nil
	}
	counts := map[string]int{}
	err := jobs.WalkFailed(ctx, store, s.Job, "", func(fi jobs.FailedItem) error {
		counts[fi.Class]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	end := c.now()
	c.mu.Lock()
	c.byJob[s.Job] = classCount{failed: s.Failed, counts: counts, next: end.Add(walkShare * end.Sub(start))}
	c.mu.Unlock()
	return counts, nil
}

func (c *classCache) keep(seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for j := range c.byJob {
		if !seen[j] {
			delete(c.byJob, j)
		}
	}
}

// httpError answers err: 404 for an unknown job, 400 for a usage error,
// 500 (logged, not shown) for the rest.
func (c *console) httpError(w http.ResponseWriter, r *http.Request, err error) {
	var ue *jobs.UsageError
	switch {
	case jobs.IsNotFound(err):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.As(err, &ue):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, context.Canceled):
		// The client went away.
	default:
		c.cfg.Logger.Error("console: request failed", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error (see the console's log)", http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// jobName reads and checks the {job} path segment.
func jobName(w http.ResponseWriter, r *http.Request) (string, bool) {
	job := r.PathValue("job")
	if err := checkpoint.ValidateJobName(job); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false
	}
	return job, true
}

func (c *console) apiJobs(w http.ResponseWriter, r *http.Request) {
	vs, err := c.views(r.Context())
	if err != nil {
		c.httpError(w, r, err)
		return
	}
	for i := range vs {
		vs[i].Inbox = nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": vs, "read_only": c.cfg.ReadOnly})
}

func (c *console) apiJob(w http.ResponseWriter, r *http.Request) {
	job, ok := jobName(w, r)
	if !ok {
		return
	}
	v, err := c.view(r.Context(), job)
	if err != nil {
		c.httpError(w, r, err)
		return
	}
	if v.Inbox == nil {
		v.Inbox = []jobs.InboxEntry{}
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *console) apiInbox(w http.ResponseWriter, r *http.Request) {
	job, ok := jobName(w, r)
	if !ok {
		return
	}
	in, err := jobs.Inbox(r.Context(), c.deps.Store, job)
	if err != nil {
		c.httpError(w, r, err)
		return
	}
	if in == nil {
		in = []jobs.InboxEntry{}
	}
	writeJSON(w, http.StatusOK, in)
}

// maxRespondBytes bounds a respond request.
const maxRespondBytes = 4 << 20

// respond records answers: JSON (one jobs.Response or an array) answered
// with the jobs.RespondSummary, or the page's form, answered by going back
// to the page with what happened.
func (c *console) respond(w http.ResponseWriter, r *http.Request) {
	job, ok := jobName(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRespondBytes)
	fromForm := !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	var rs []jobs.Response
	if fromForm {
		resp, err := formResponse(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rs = []jobs.Response{resp}
	} else {
		var err error
		if rs, err = jsonResponses(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	sum, err := jobs.Respond(r.Context(), c.deps, job, rs)
	if err != nil && sum.Applied+sum.AlreadyAnswered+sum.Rejected == 0 {
		c.httpError(w, r, err)
		return
	}
	if err != nil {
		// The answers are recorded; resuming an item failed.
		sum.Notes = append(sum.Notes, err.Error())
	}
	c.cfg.Logger.Info("console: responses", "job", job, "applied", sum.Applied, "rejected", sum.Rejected, "resumed", sum.Resumed, "remote", r.RemoteAddr)
	if !fromForm {
		writeJSON(w, http.StatusOK, sum)
		return
	}
	var b bytes.Buffer
	jobs.PrintResponses(&b, sum)
	http.Redirect(w, r, "/?notice="+url.QueryEscape(job+": "+strings.TrimSpace(b.String()))+"#inbox", http.StatusSeeOther)
}

// formResponse reads one answer from the page's form.
func formResponse(r *http.Request) (jobs.Response, error) {
	if err := r.ParseForm(); err != nil {
		return jobs.Response{}, errors.New("bad form")
	}
	f := r.PostForm
	resp := jobs.Response{
		Item: f.Get("item"), Request: f.Get("request"), Decision: agent.DecisionKind(f.Get("decision")),
		Line: 1, Source: "the form",
	}
	switch resp.Decision {
	case agent.DecideReject:
		resp.Message = f.Get("message")
	case agent.DecideEdit:
		resp.Arguments = json.RawMessage(f.Get("arguments"))
	case agent.DecideAnswer:
		a := f.Get("answer")
		resp.Answer = &a
	}
	return resp, nil
}

// jsonResponses reads one response object or an array of them.
func jsonResponses(body io.Reader) ([]jobs.Response, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, errors.New("request body too large or unreadable")
	}
	raw = bytes.TrimSpace(raw)
	decode := func(b []byte, v any) error {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	var rs []jobs.Response
	if len(raw) > 0 && raw[0] == '[' {
		err = decode(raw, &rs)
	} else {
		var one jobs.Response
		err = decode(raw, &one)
		rs = []jobs.Response{one}
	}
	if err != nil {
		return nil, errors.New(`body is not a response {"item", "request", "decision", "message", "arguments", "answer"} or an array of them: ` + err.Error())
	}
	for i := range rs {
		rs[i].Line = i + 1
		rs[i].Source = "response " + strconv.Itoa(i+1)
	}
	return rs, nil
}
