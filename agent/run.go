package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/llmfleet/llmfleet/schema"
	"github.com/llmfleet/llmfleet/tasks"
)

// Call is one tool run, as an executor receives it.
type Call struct {
	Job  string `json:"job"`
	Item string `json:"item"`
	// ID is the model's call id.
	ID   string `json:"call_id"`
	Name string `json:"name"`
	// Arguments are the call's arguments, valid against the tool's
	// parameters.
	Arguments json.RawMessage `json:"arguments"`
	// Key is the run's Idempotency-Key: the same when a run is repeated
	// after a crash (see IdempotencyKey).
	Key string `json:"-"`
}

// Func is a tool written in Go, registered on the worker by name
// (worker.Config.Tools). Its string is what the model receives. An error
// made by ForModel goes back to the model as the result, like an HTTP
// tool's 4xx; any other error is retried like a 5xx, up to the tool's
// max_attempts.
type Func func(ctx context.Context, c Call) (string, error)

// ForModel returns an error whose text a Func wants the model to read as
// the tool's result (bad arguments, nothing found), rather than a failure
// to retry.
func ForModel(text string) error { return &modelError{text: text} }

type modelError struct{ text string }

func (e *modelError) Error() string { return e.text }

// Outcome is what one tool call came to.
type Outcome struct {
	// Content is the tool message the model receives: the result, or the
	// text of a 4xx or of invalid arguments.
	Content string
	// Runs is how many times the tool was run (0 when the arguments were
	// refused before any run).
	Runs int
	// Failed, when not nil, is why the tool could not give an answer after
	// its attempts (or could not be run at all): the item fails tool_error.
	Failed error
}

// Runner runs tool calls. Its zero value is ready: it calls HTTP tools with
// a client of its own and reads ${VAR}s from the process environment.
type Runner struct {
	// Client calls HTTP tools; nil means one with no timeout of its own
	// (each run has the tool's).
	Client *http.Client
	// Funcs are the Go tools, by name.
	Funcs map[string]Func
	// LookupEnv expands ${VAR} in urls and headers; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// BackoffMin and BackoffMax bound the wait between runs of a failing
	// tool; zero means 250ms and 10s.
	BackoffMin, BackoffMax time.Duration
	Log                    *slog.Logger

	schemas sync.Map // tool name + parameters → *schema.Schema
}

// maxResultBytes bounds what one tool may answer: a larger answer is a
// failure, not a result (the transcript limit would refuse it anyway).
const maxResultBytes = 8 << 20

// Run runs one call to tool t. It returns when the tool answered, gave up
// after its attempts, or ctx ended (Outcome.Failed is then ctx's error:
// the caller stops without committing, and the run repeats later with the
// same key).
func (r *Runner) Run(ctx context.Context, t *Tool, tc tasks.ToolCall, base Call) Outcome {
	args, bad := r.arguments(t, tc.Function.Arguments)
	if bad != "" {
		return Outcome{Content: bad}
	}
	call := base
	call.ID, call.Name, call.Arguments = tc.ID, t.Name, args
	var last error
	for run := 1; run <= t.Attempts(); run++ {
		content, err := r.once(ctx, t, call)
		var me *modelError
		var fe *finalError
		switch {
		case err == nil:
			return Outcome{Content: content, Runs: run}
		case errors.As(err, &me):
			return Outcome{Content: me.text, Runs: run}
		case ctx.Err() != nil:
			return Outcome{Runs: run, Failed: ctx.Err()}
		case errors.As(err, &fe):
			return Outcome{Runs: run, Failed: fmt.Errorf("tool %s: %w", t.Name, fe.err)}
		}
		last = err
		if run == t.Attempts() {
			break
		}
		wait := r.backoff(run, err)
		if r.Log != nil {
			r.Log.Debug("tool run failed, will retry", "tool", t.Name, "run", run, "in", wait, "err", err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return Outcome{Runs: run, Failed: ctx.Err()}
		case <-timer.C:
		}
	}
	return Outcome{Runs: t.Attempts(), Failed: fmt.Errorf("tool %s failed after %d attempts: %w", t.Name, t.Attempts(), last)}
}

// arguments parses and validates a call's arguments. A refusal is returned
// as the text the model receives instead of a result.
func (r *Runner) arguments(t *Tool, raw string) (json.RawMessage, string) {
	if strings.TrimSpace(raw) == "" {
		raw = "{}"
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		return nil, fmt.Sprintf("invalid arguments for tool %s: not valid JSON: %v. Call it again with a JSON object.", t.Name, err)
	}
	if _, ok := inst.(map[string]any); !ok {
		return nil, fmt.Sprintf("invalid arguments for tool %s: want a JSON object, got %s. Call it again with a JSON object.", t.Name, clip(raw, 200))
	}
	sch, err := r.schema(t)
	if err != nil {
		// Checked when the job was created; a worker that cannot compile
		// it runs the tool unchecked rather than failing the item.
		if r.Log != nil {
			r.Log.Warn("compile tool parameters", "tool", t.Name, "err", err)
		}
	} else if err := sch.ValidateValue(inst); err != nil {
		return nil, fmt.Sprintf("invalid arguments for tool %s: %s. Call it again with arguments that match its parameters.", t.Name, oneLine(err.Error()))
	}
	var b bytes.Buffer
	if json.Compact(&b, []byte(raw)) != nil {
		return json.RawMessage(raw), ""
	}
	return b.Bytes(), ""
}

// ValidateArguments reports whether args are valid arguments for t, with
// the text the model would receive when they are not.
func (r *Runner) ValidateArguments(t *Tool, args string) error {
	if _, bad := r.arguments(t, args); bad != "" {
		return errors.New(bad)
	}
	return nil
}

func (r *Runner) schema(t *Tool) (*schema.Schema, error) {
	key := t.Name + "\x00" + string(t.Parameters)
	if s, ok := r.schemas.Load(key); ok {
		return s.(*schema.Schema), nil
	}
	s, err := CompileSchema(t.Parameters)
	if err != nil {
		return nil, err
	}
	r.schemas.Store(key, s)
	return s, nil
}

// finalError is a failure no retry can fix (a missing variable, no
// executor): the item fails at once.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }

// once makes one run under the tool's timeout.
func (r *Runner) once(ctx context.Context, t *Tool, c Call) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.TimeoutOrDefault())
	defer cancel()
	switch t.Kind() {
	case ExecutorHTTP:
		return r.post(ctx, t, c)
	case ExecutorGo:
		f := r.Funcs[t.Name]
		if f == nil {
			return "", &finalError{fmt.Errorf("no url, and no Go function of that name is registered on this worker (worker.Config.Tools)")}
		}
		return r.goTool(ctx, t, f, c)
	}
	return "", &finalError{fmt.Errorf("executor %q cannot be run by a worker", t.Kind())}
}

func (r *Runner) goTool(ctx context.Context, t *Tool, f Func, c Call) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	out, err = f(ctx, c)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return "", fmt.Errorf("timed out after %s", t.TimeoutOrDefault())
	}
	return out, err
}

// retryAfterError carries a tool's Retry-After.
type retryAfterError struct {
	err  error
	wait time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }

func (r *Runner) post(ctx context.Context, t *Tool, c Call) (string, error) {
	var missing []string
	used := map[string]string{} // variable → value, kept out of what the run reports
	expand := func(s string) string {
		return os.Expand(s, func(name string) string {
			v, ok := r.lookupEnv(name)
			if !ok {
				missing = append(missing, name)
			}
			used[name] = v
			return v
		})
	}
	target := expand(t.URL)
	headers := make(http.Header)
	for _, name := range sortedKeys(t.Headers) {
		headers.Set(name, expand(t.Headers[name]))
	}
	if len(missing) > 0 {
		return "", &finalError{fmt.Errorf("%s not set in this worker's environment (used by the tool's url or headers)", strings.Join(missing, ", "))}
	}
	redact := redactor(used)
	if !httpURL(target) {
		// The expanded url may hold a secret: name the template only.
		return "", &finalError{fmt.Errorf("url %q is not an http or https url once expanded", t.URL)}
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", &finalError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// The expanded url may hold a secret: name the template only.
		return "", &finalError{fmt.Errorf("url %q is not a valid url once expanded", t.URL)}
	}
	req.Header = headers
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/plain")
	req.Header.Set("Idempotency-Key", c.Key)
	req.Header.Set("User-Agent", "llmfleet-worker")
	client := r.Client
	if client == nil {
		client = sameHostClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", transportError(ctx, t, err, redact)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResultBytes+1))
	if err != nil {
		return "", transportError(ctx, t, err, redact)
	}
	switch {
	case len(b) > maxResultBytes:
		return "", &finalError{fmt.Errorf("answered more than %d bytes", maxResultBytes)}
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resultText(b), nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		err := fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip(oneLine(redact(string(b))), 300))
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			return "", &retryAfterError{err: err, wait: time.Duration(min(s, 60)) * time.Second}
		}
		return "", err
	case resp.StatusCode >= 400:
		return "", ForModel(fmt.Sprintf("tool %s refused the call: HTTP %d: %s", t.Name, resp.StatusCode, clip(redact(resultText(b)), 2000)))
	}
	return "", fmt.Errorf("HTTP %d: not an answer", resp.StatusCode)
}

// sameHostClient follows redirects within the tool's host only: a
// redirect elsewhere would carry the tool's headers (and their secrets) to
// another server. The 3xx itself is then the answer, which is no result.
var sameHostClient = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		return http.ErrUseLastResponse
	}
	return nil
}}

// transportError says what went wrong without the url (which may hold an
// expanded secret), and without any expanded value (a DNS error names the
// host, which may come from a variable).
func transportError(ctx context.Context, t *Tool, err error, redact func(string) string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %s", t.TimeoutOrDefault())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("connection: %s", redact(err.Error()))
}

// minRedacted is the shortest value redactor hides: shorter ones are no
// secret, and hiding them would mangle the text around them.
const minRedacted = 4

// redactor returns a function that writes each variable's value as its
// ${NAME} in a text the run reports (an error, a refusal the model reads):
// the values come from the worker's environment and may be secrets, which
// must not reach Redis. A 2xx result is the tool's answer and left alone.
func redactor(vars map[string]string) func(string) string {
	names := make([]string, 0, len(vars))
	for name, v := range vars {
		if len(v) >= minRedacted {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return func(s string) string { return s }
	}
	// Longest value first, so that a value inside another is not replaced
	// first (the Replacer compares in argument order).
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(len(vars[b])-len(vars[a]), strings.Compare(a, b))
	})
	pairs := make([]string, 0, 2*len(names))
	for _, name := range names {
		pairs = append(pairs, vars[name], "${"+name+"}")
	}
	return strings.NewReplacer(pairs...).Replace
}

// resultText is a 2xx body as the model receives it: the "output" of a
// JSON {"output": ...} answer (as is when a string, else its JSON), or
// the body.
func resultText(b []byte) string {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		var doc map[string]json.RawMessage
		if json.Unmarshal(t, &doc) == nil {
			if out, ok := doc["output"]; ok {
				var s string
				if json.Unmarshal(out, &s) == nil {
					return s
				}
				return string(out)
			}
		}
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

func (r *Runner) lookupEnv(name string) (string, bool) {
	if r.LookupEnv != nil {
		return r.LookupEnv(name)
	}
	return os.LookupEnv(name)
}

// backoff is a random wait before run n+1, at least a tool's Retry-After.
func (r *Runner) backoff(n int, err error) time.Duration {
	lo, hi := r.BackoffMin, r.BackoffMax
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi <= 0 {
		hi = 10 * time.Second
	}
	ceil := min(lo<<min(n-1, 20), hi)
	d := lo + rand.N(max(ceil-lo, 1))
	var ra *retryAfterError
	if errors.As(err, &ra) {
		d = max(d, ra.wait)
	}
	return d
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
