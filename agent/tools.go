package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/llmfleet/llmfleet/schema"
)

// Approval says whether a tool call waits for a person before it runs.
type Approval string

// Approvals.
const (
	ApprovalNever  Approval = "never" // the default
	ApprovalAlways Approval = "always"
)

// Executor says what runs a tool.
type Executor string

// Executors. A tool with a url is an HTTP tool; one without is a Go
// function registered on the worker (worker.Config.Tools) under its name.
const (
	ExecutorHTTP  Executor = "http"
	ExecutorGo    Executor = "go"
	ExecutorHuman Executor = "human"
)

// Defaults of a tool's limits.
const (
	DefaultToolTimeout     = 30 * time.Second
	DefaultToolMaxAttempts = 3
)

// Tool is one tool a job's items may call, as `run --tools FILE` declares
// it. It is stored with the job's policy, so it holds no secret: headers
// and the url keep their ${VAR} references, expanded from the worker's
// environment when the call is made.
type Tool struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Parameters  json.RawMessage   `json:"parameters,omitempty"`
	URL         string            `json:"url,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
	Approval    Approval          `json:"approval,omitempty"`
	Executor    Executor          `json:"executor,omitempty"`
}

// Kind is what runs the tool: its executor, else http with a url, else go.
func (t *Tool) Kind() Executor {
	switch {
	case t.Executor != "":
		return t.Executor
	case t.URL != "":
		return ExecutorHTTP
	}
	return ExecutorGo
}

// TimeoutOrDefault is the tool's timeout per run.
func (t *Tool) TimeoutOrDefault() time.Duration {
	if t.Timeout > 0 {
		return time.Duration(t.Timeout)
	}
	return DefaultToolTimeout
}

// Attempts is how many times a failing run is tried.
func (t *Tool) Attempts() int {
	if t.MaxAttempts > 0 {
		return t.MaxAttempts
	}
	return DefaultToolMaxAttempts
}

// NeedsPerson reports a tool whose calls wait for a person.
func (t *Tool) NeedsPerson() bool {
	return t.Approval == ApprovalAlways || t.Kind() == ExecutorHuman
}

// Duration is a time.Duration written as Go's duration text ("30s") in
// JSON, as a tools file gives it.
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s", or a number of seconds; null leaves the
// duration as it is (as encoding/json does for its own types).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if json.Unmarshal(b, &secs) != nil {
			return &durationError{fmt.Sprintf("want a duration like \"30s\", got %s", b)}
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &durationError{fmt.Sprintf("want a duration like \"30s\", got %q", s)}
	}
	*d = Duration(v)
	return nil
}

// toolName is OpenAI's rule for function names.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// secretHeader matches header names whose values are credentials: such a
// value must come from the worker's environment, never from the file
// (which is stored in Redis with the job).
var secretHeader = regexp.MustCompile(`(?i)authorization|token|secret|key|password|cookie`)

// ParseTools reads a tools file: {"tools": [...]} or a bare array. Every
// problem is named by the tool's index and name and the field.
func ParseTools(b []byte) ([]Tool, error) {
	b = bytes.TrimSpace(b)
	var doc struct {
		Tools []json.RawMessage `json:"tools"`
	}
	switch {
	case len(b) == 0:
		return nil, errors.New("tools file is empty")
	case b[0] == '[':
		if err := json.Unmarshal(b, &doc.Tools); err != nil {
			return nil, fmt.Errorf("tools file: %w", err)
		}
	default:
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf(`tools file must be {"tools": [...]}: %w`, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New(`tools file must be {"tools": [...]}: unexpected text after it`)
		}
	}
	if len(doc.Tools) == 0 {
		return nil, errors.New("tools file declares no tools")
	}
	out := make([]Tool, 0, len(doc.Tools))
	seen := map[string]bool{}
	for i, raw := range doc.Tools {
		var t Tool
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			// Name the tool even when its other fields do not decode.
			var named struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(raw, &named)
			var de *durationError
			if errors.As(err, &de) {
				err = fmt.Errorf("timeout: %w", err) // a Tool's only Duration
			}
			return nil, fmt.Errorf("%s: %w", toolRef(i, named.Name), err)
		}
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", toolRef(i, t.Name), err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tools[%d]: tool %q is declared twice", i, t.Name)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	return out, nil
}

// toolRef names tools[i] in an error, with its name when it has one.
func toolRef(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("tools[%d] (%s)", i, name)
	}
	return fmt.Sprintf("tools[%d]", i)
}

// durationError is a Duration that does not parse.
type durationError struct{ text string }

func (e *durationError) Error() string { return e.text }

func (t *Tool) validate() error {
	if !toolName.MatchString(t.Name) {
		return fmt.Errorf("name must be 1 to 64 letters, digits, _ or -, got %q", t.Name)
	}
	if len(t.Parameters) == 0 || string(t.Parameters) == "null" {
		t.Parameters = json.RawMessage(`{"type":"object","properties":{}}`)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, t.Parameters); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	t.Parameters = compact.Bytes()
	if t.Parameters[0] != '{' {
		return fmt.Errorf("parameters must be a JSON Schema object, got %s", t.Parameters)
	}
	if _, err := CompileSchema(t.Parameters); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	switch t.Approval {
	case "", ApprovalNever, ApprovalAlways:
	default:
		return fmt.Errorf("approval must be %q or %q, got %q", ApprovalNever, ApprovalAlways, t.Approval)
	}
	switch t.Executor {
	case "", ExecutorHTTP, ExecutorGo, ExecutorHuman:
	default:
		return fmt.Errorf("executor must be %q, %q or %q, got %q", ExecutorHTTP, ExecutorGo, ExecutorHuman, t.Executor)
	}
	switch {
	case t.Executor == ExecutorHTTP && t.URL == "":
		return errors.New(`executor "http" needs a url`)
	case (t.Executor == ExecutorGo || t.Executor == ExecutorHuman) && t.URL != "":
		return fmt.Errorf("executor %q takes no url", t.Executor)
	case t.Kind() != ExecutorHTTP && len(t.Headers) > 0:
		return errors.New("headers need a url")
	}
	if t.URL != "" && !plausibleURL(t.URL) {
		return fmt.Errorf("url must be an http or https url, got %q", t.URL)
	}
	if t.URL != "" {
		if err := literalURLSecret(t.URL); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(t.Headers) {
		v := t.Headers[name]
		if secretHeader.MatchString(name) && !strings.Contains(v, "${") && v != "" {
			return fmt.Errorf("header %s holds a literal value: write it as ${VAR} so the secret stays in the workers' environment (the tools file is stored in Redis with the job)", name)
		}
	}
	if t.Timeout < 0 {
		return fmt.Errorf("timeout must not be negative, got %s", time.Duration(t.Timeout))
	}
	if t.Timeout > 0 && time.Duration(t.Timeout) < time.Millisecond {
		return fmt.Errorf("timeout must be at least 1ms, got %s", time.Duration(t.Timeout))
	}
	if t.MaxAttempts < 0 {
		return fmt.Errorf("max_attempts must be at least 1, got %d", t.MaxAttempts)
	}
	return nil
}

// plausibleURL reports whether a tool's url template may be an http(s) url
// once expanded. The scheme and host may come from the environment (a url
// that starts with ${VAR}); whatever is literal must already look like an
// http(s) url. A variable is probed as "0", which fits in a host, a port,
// a path and a query alike. The expanded url is checked again when the
// call is made.
func plausibleURL(tmpl string) bool {
	if strings.HasPrefix(tmpl, "$") {
		return true
	}
	return httpURL(os.Expand(tmpl, func(string) string { return "0" }))
}

// literalURLSecret refuses a url that holds a credential written out: a
// password in its user info, or a query parameter whose name says it is a
// credential, not taken from ${VAR}. The tools file is stored in Redis.
func literalURLSecret(tmpl string) error {
	u, err := url.Parse(os.Expand(tmpl, func(name string) string { return "VAR" + name }))
	if err != nil {
		return nil // plausibleURL already judged it
	}
	if p, ok := u.User.Password(); ok && !strings.HasPrefix(p, "VAR") {
		return errors.New("url holds a literal password: write it as ${VAR} so the secret stays in the workers' environment (the tools file is stored in Redis with the job)")
	}
	for name, vals := range u.Query() {
		for _, v := range vals {
			if secretHeader.MatchString(name) && v != "" && !strings.HasPrefix(v, "VAR") {
				return fmt.Errorf("url parameter %s holds a literal value: write it as ${VAR} so the secret stays in the workers' environment (the tools file is stored in Redis with the job)", name)
			}
		}
	}
	return nil
}

// httpURL reports an absolute http or https url.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Names returns the tools' names in order.
func Names(tools []Tool) []string {
	out := make([]string, len(tools))
	for i, t := range tools {
		out[i] = t.Name
	}
	return out
}

// Select returns the tools an item may call: all of them when names is
// empty, else the named ones in the job's order.
func Select(tools []Tool, names []string) []Tool {
	if len(names) == 0 {
		return tools
	}
	var out []Tool
	for _, t := range tools {
		if slices.Contains(names, t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// Find returns the named tool.
func Find(tools []Tool, name string) (*Tool, bool) {
	for i := range tools {
		if tools[i].Name == name {
			return &tools[i], true
		}
	}
	return nil, false
}

// CompileSchema compiles a JSON Schema (package schema).
func CompileSchema(raw json.RawMessage) (*schema.Schema, error) { return schema.Compile(raw) }
