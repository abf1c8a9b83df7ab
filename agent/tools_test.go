package agent_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/agent"
)

// designTools is the example of DESIGN.md ("Agent items"), with ask_human's
// elided parameters written out.
const designTools = `[
  {"name": "check_disk", "description": "Check current disk usage",
   "parameters": {"type": "object", "properties": {}},
   "url": "http://tools.internal:8080/check_disk", "headers": {"Authorization": "Bearer ${TOOLS_TOKEN}"},
   "timeout": "30s", "max_attempts": 3, "approval": "never"},
  {"name": "clean_logs", "description": "Delete old logs", "parameters": {"type": "object"},
   "url": "http://tools.internal:8080/clean_logs", "approval": "always"},
  {"name": "ask_human", "description": "Ask the operator a question",
   "parameters": {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]},
   "executor": "human"}
]`

func TestParseToolsDesignExample(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file string }{
		{"object", `{"tools": ` + designTools + `}`},
		{"bare array", designTools},
		{"surrounding space", "\n  " + designTools + "\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tools, err := agent.ParseTools([]byte(tc.file))
			if err != nil {
				t.Fatalf("ParseTools: %v", err)
			}
			if got, want := agent.Names(tools), []string{"check_disk", "clean_logs", "ask_human"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("names %v, want %v", got, want)
			}
			cd, cl, ah := tools[0], tools[1], tools[2]
			if cd.Kind() != agent.ExecutorHTTP || cl.Kind() != agent.ExecutorHTTP || ah.Kind() != agent.ExecutorHuman {
				t.Errorf("kinds %s %s %s, want http http human", cd.Kind(), cl.Kind(), ah.Kind())
			}
			if got := cd.Headers["Authorization"]; got != "Bearer ${TOOLS_TOKEN}" {
				t.Errorf("header kept as %q, want the ${TOOLS_TOKEN} reference unexpanded", got)
			}
			if cd.TimeoutOrDefault() != 30*time.Second || cd.Attempts() != 3 || cd.Approval != agent.ApprovalNever {
				t.Errorf("check_disk limits %s/%d/%q", cd.TimeoutOrDefault(), cd.Attempts(), cd.Approval)
			}
			if cl.TimeoutOrDefault() != agent.DefaultToolTimeout || cl.Attempts() != agent.DefaultToolMaxAttempts {
				t.Errorf("clean_logs defaults %s/%d", cl.TimeoutOrDefault(), cl.Attempts())
			}
			if cd.NeedsPerson() || !cl.NeedsPerson() || !ah.NeedsPerson() {
				t.Errorf("NeedsPerson %v %v %v, want false true true", cd.NeedsPerson(), cl.NeedsPerson(), ah.NeedsPerson())
			}
			if got := string(cd.Parameters); got != `{"type":"object","properties":{}}` {
				t.Errorf("parameters not compacted: %s", got)
			}
			if got := string(cl.Parameters); got != `{"type":"object"}` {
				t.Errorf("clean_logs parameters %s", got)
			}
		})
	}
}

func TestParseToolsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		file string
		want []string // every one is in the error
		not  []string // none is
	}{
		{"empty file", ``, []string{"empty"}, nil},
		{"blank file", " \n\t\n", []string{"empty"}, nil},
		{"not json", `tools: []`, []string{"tools file"}, nil},
		{"no tools object", `{"tools": []}`, []string{"no tools"}, nil},
		{"no tools array", `[]`, []string{"no tools"}, nil},
		{"no tools key", `{}`, []string{"no tools"}, nil},
		{"null tools", `{"tools": null}`, []string{"no tools"}, nil},
		{"unknown top key", `{"tools": [{"name": "a"}], "tool": []}`, []string{`"tool"`}, nil},
		{"text after object", `{"tools": [{"name": "a"}]} {"tools": []}`, []string{"after"}, nil},
		{"text after array", `[{"name": "a"}] x`, []string{"tools file"}, nil},
		{"empty name", `[{"description": "x"}]`, []string{"tools[0]", "name"}, nil},
		{"bad name", `[{"name": "check disk"}]`, []string{"tools[0]", "check disk", "name"}, nil},
		{"name too long", `[{"name": "` + strings.Repeat("a", 65) + `"}]`, []string{"tools[0]", "name"}, nil},
		{"duplicate", `[{"name": "a"}, {"name": "b"}, {"name": "a"}]`, []string{"tools[2]", `"a"`, "twice"}, nil},
		{"unknown key", `[{"name": "a", "descripton": "x"}]`, []string{"tools[0] (a)", "descripton"}, nil},
		{"later tool named", `[{"name": "ok"}, {"name": "b", "approval": "maybe"}]`, []string{"tools[1] (b)", "approval", "maybe"}, nil},
		{"tool not an object", `[{"name": "ok"}, "b"]`, []string{"tools[1]"}, nil},
		{"parameters a string", `[{"name": "a", "parameters": "object"}]`, []string{"tools[0] (a)", "parameters"}, nil},
		{"parameters an array", `[{"name": "a", "parameters": []}]`, []string{"tools[0] (a)", "parameters"}, nil},
		{"parameters true", `[{"name": "a", "parameters": true}]`, []string{"tools[0] (a)", "parameters"}, nil},
		{"parameters bad type", `[{"name": "a", "parameters": {"type": 5}}]`, []string{"tools[0] (a)", "parameters"}, nil},
		{"parameters bad required", `[{"name": "a", "parameters": {"type": "object", "required": "host"}}]`, []string{"tools[0] (a)", "parameters"}, nil},
		{"parameters outside ref", `[{"name": "a", "parameters": {"$ref": "http://example.com/s.json"}}]`, []string{"tools[0] (a)", "parameters"}, nil},
		{"bad approval", `[{"name": "a", "approval": "sometimes"}]`, []string{"tools[0] (a)", "approval", "sometimes"}, nil},
		{"bad executor", `[{"name": "a", "executor": "shell"}]`, []string{"tools[0] (a)", "executor", "shell"}, nil},
		{"http without url", `[{"name": "a", "executor": "http"}]`, []string{"tools[0] (a)", "http", "url"}, nil},
		{"go with url", `[{"name": "a", "executor": "go", "url": "http://h/a"}]`, []string{"tools[0] (a)", "go", "url"}, nil},
		{"human with url", `[{"name": "a", "executor": "human", "url": "http://h/a"}]`, []string{"tools[0] (a)", "human", "url"}, nil},
		{"headers without url", `[{"name": "a", "headers": {"X-Trace": "1"}}]`, []string{"tools[0] (a)", "headers", "url"}, nil},
		{"headers on human", `[{"name": "a", "executor": "human", "headers": {"X-Trace": "1"}}]`, []string{"tools[0] (a)", "headers"}, nil},
		{"literal authorization", `[{"name": "a", "url": "http://h/a", "headers": {"Authorization": "Bearer abc-literal-secret"}}]`,
			[]string{"tools[0] (a)", "Authorization", "${VAR}"}, []string{"abc-literal-secret"}},
		{"literal api key", `[{"name": "a", "url": "http://h/a", "headers": {"X-Api-Key": "k-literal-secret"}}]`,
			[]string{"tools[0] (a)", "X-Api-Key"}, []string{"k-literal-secret"}},
		{"url ftp", `[{"name": "a", "url": "ftp://h/a"}]`, []string{"tools[0] (a)", "url", "ftp://h/a"}, nil},
		{"url relative", `[{"name": "a", "url": "/a"}]`, []string{"tools[0] (a)", "url"}, nil},
		{"url no host", `[{"name": "a", "url": "http:///a"}]`, []string{"tools[0] (a)", "url"}, nil},
		{"url literal bad scheme with var", `[{"name": "a", "url": "file://${DIR}/a"}]`, []string{"tools[0] (a)", "url"}, nil},
		{"negative timeout", `[{"name": "a", "timeout": "-1s"}]`, []string{"tools[0] (a)", "timeout", "negative"}, nil},
		{"negative timeout number", `[{"name": "a", "timeout": -2}]`, []string{"tools[0] (a)", "timeout", "negative"}, nil},
		{"timeout abc", `[{"name": "a", "timeout": "abc"}]`, []string{"tools[0] (a)", "timeout", "abc"}, nil},
		{"timeout bool", `[{"name": "a", "timeout": true}]`, []string{"tools[0] (a)", "timeout"}, nil},
		{"timeout below 1ms", `[{"name": "a", "timeout": "10us"}]`, []string{"tools[0] (a)", "timeout", "1ms"}, nil},
		{"max_attempts -1", `[{"name": "a", "max_attempts": -1}]`, []string{"tools[0] (a)", "max_attempts", "-1"}, nil},
		{"max_attempts string", `[{"name": "a", "max_attempts": "3"}]`, []string{"tools[0] (a)", "max_attempts"}, nil},
		{"max_attempts fraction", `[{"name": "a", "max_attempts": 1.5}]`, []string{"tools[0] (a)", "max_attempts"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tools, err := agent.ParseTools([]byte(tc.file))
			if err == nil {
				t.Fatalf("ParseTools(%s) = %+v, want an error", tc.file, tools)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q repeats %q", err, n)
				}
			}
		})
	}
}

func TestParseToolsAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		tool  string
		check func(t *testing.T, tl agent.Tool)
	}{
		{"authorization from env", `{"name": "a", "url": "http://h/a", "headers": {"Authorization": "Bearer ${TOOLS_TOKEN}"}}`, func(t *testing.T, tl agent.Tool) {
			if tl.Headers["Authorization"] != "Bearer ${TOOLS_TOKEN}" {
				t.Errorf("headers %v", tl.Headers)
			}
		}},
		{"plain header literal", `{"name": "a", "url": "https://h/a", "headers": {"X-Trace": "on", "Accept-Language": "en"}}`, nil},
		{"port from env", `{"name": "a", "url": "http://localhost:${TOOLS_PORT}/a"}`, nil},
		{"host from env", `{"name": "a", "url": "https://${TOOLS_HOST}/a?key=${TOOLS_KEY}"}`, nil},
		{"base url from env", `{"name": "a", "url": "${TOOLS_URL}/check_disk"}`, func(t *testing.T, tl agent.Tool) {
			if tl.Kind() != agent.ExecutorHTTP {
				t.Errorf("kind %s", tl.Kind())
			}
		}},
		{"explicit http", `{"name": "a", "executor": "http", "url": "http://h/a"}`, nil},
		{"explicit go", `{"name": "a", "executor": "go"}`, func(t *testing.T, tl agent.Tool) {
			if tl.Kind() != agent.ExecutorGo || tl.NeedsPerson() {
				t.Errorf("kind %s, needs person %v", tl.Kind(), tl.NeedsPerson())
			}
		}},
		{"timeout number", `{"name": "a", "timeout": 1.5}`, func(t *testing.T, tl agent.Tool) {
			if tl.TimeoutOrDefault() != 1500*time.Millisecond {
				t.Errorf("timeout %s", tl.TimeoutOrDefault())
			}
		}},
		{"timeout null", `{"name": "a", "timeout": null}`, func(t *testing.T, tl agent.Tool) {
			if tl.TimeoutOrDefault() != agent.DefaultToolTimeout {
				t.Errorf("timeout %s", tl.TimeoutOrDefault())
			}
		}},
		{"max_attempts 0 is the default", `{"name": "a", "max_attempts": 0}`, func(t *testing.T, tl agent.Tool) {
			if tl.Attempts() != agent.DefaultToolMaxAttempts {
				t.Errorf("attempts %d", tl.Attempts())
			}
		}},
		{"no parameters", `{"name": "a"}`, func(t *testing.T, tl agent.Tool) {
			if string(tl.Parameters) != `{"type":"object","properties":{}}` {
				t.Errorf("parameters %s", tl.Parameters)
			}
		}},
		{"null parameters", `{"name": "a", "parameters": null}`, func(t *testing.T, tl agent.Tool) {
			if string(tl.Parameters) != `{"type":"object","properties":{}}` {
				t.Errorf("parameters %s", tl.Parameters)
			}
		}},
		{"inner ref", `{"name": "a", "parameters": {"type": "object", "properties": {"h": {"$ref": "#/$defs/host"}}, "$defs": {"host": {"type": "string"}}}}`, nil},
		{"name charset", `{"name": "Check_disk-2"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tools, err := agent.ParseTools([]byte("[" + tc.tool + "]"))
			if err != nil {
				t.Fatalf("ParseTools: %v", err)
			}
			if len(tools) != 1 {
				t.Fatalf("%d tools", len(tools))
			}
			if tc.check != nil {
				tc.check(t, tools[0])
			}
		})
	}
}

func TestToolDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		tool     agent.Tool
		kind     agent.Executor
		timeout  time.Duration
		attempts int
		person   bool
	}{
		{"zero", agent.Tool{Name: "a"}, agent.ExecutorGo, agent.DefaultToolTimeout, agent.DefaultToolMaxAttempts, false},
		{"url", agent.Tool{URL: "http://h/a"}, agent.ExecutorHTTP, agent.DefaultToolTimeout, agent.DefaultToolMaxAttempts, false},
		{"human", agent.Tool{Executor: agent.ExecutorHuman}, agent.ExecutorHuman, agent.DefaultToolTimeout, agent.DefaultToolMaxAttempts, true},
		{"approval", agent.Tool{URL: "http://h/a", Approval: agent.ApprovalAlways}, agent.ExecutorHTTP, agent.DefaultToolTimeout, agent.DefaultToolMaxAttempts, true},
		{"limits", agent.Tool{Timeout: agent.Duration(2 * time.Second), MaxAttempts: 1}, agent.ExecutorGo, 2 * time.Second, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.tool.Kind(); got != tc.kind {
				t.Errorf("Kind %q, want %q", got, tc.kind)
			}
			if got := tc.tool.TimeoutOrDefault(); got != tc.timeout {
				t.Errorf("TimeoutOrDefault %s, want %s", got, tc.timeout)
			}
			if got := tc.tool.Attempts(); got != tc.attempts {
				t.Errorf("Attempts %d, want %d", got, tc.attempts)
			}
			if got := tc.tool.NeedsPerson(); got != tc.person {
				t.Errorf("NeedsPerson %v, want %v", got, tc.person)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{`"30s"`, 30 * time.Second, `"30s"`},
		{`30`, 30 * time.Second, `"30s"`},
		{`0.25`, 250 * time.Millisecond, `"250ms"`},
		{`"1m30s"`, 90 * time.Second, `"1m30s"`},
		{`"1500ms"`, 1500 * time.Millisecond, `"1.5s"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			var d agent.Duration
			if err := json.Unmarshal([]byte(tc.in), &d); err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.in, err)
			}
			if time.Duration(d) != tc.want {
				t.Fatalf("Unmarshal(%s) = %s, want %s", tc.in, time.Duration(d), tc.want)
			}
			b, err := json.Marshal(d)
			if err != nil || string(b) != tc.out {
				t.Fatalf("Marshal = %s, %v, want %s", b, err, tc.out)
			}
			var back agent.Duration
			if err := json.Unmarshal(b, &back); err != nil || back != d {
				t.Fatalf("round trip %s → %s (%v)", time.Duration(d), time.Duration(back), err)
			}
		})
	}
	for _, bad := range []string{`"abc"`, `"30"`, `true`, `{}`, `[]`} {
		var d agent.Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) = %s, want an error", bad, time.Duration(d))
		}
	}
}

// A parsed tools file written back as JSON (as the job's policy stores it)
// parses to the same tools.
func TestToolsJSONRoundTrip(t *testing.T) {
	t.Parallel()
	tools, err := agent.ParseTools([]byte(designTools))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tools)
	if err != nil {
		t.Fatal(err)
	}
	again, err := agent.ParseTools(b)
	if err != nil {
		t.Fatalf("ParseTools(%s): %v", b, err)
	}
	if !reflect.DeepEqual(tools, again) {
		t.Fatalf("round trip changed the tools:\n%+v\n%+v", tools, again)
	}
	if !strings.Contains(string(b), `"timeout":"30s"`) {
		t.Errorf("timeout not written as text: %s", b)
	}
}

func TestSelectAndFind(t *testing.T) {
	t.Parallel()
	tools, err := agent.ParseTools([]byte(designTools))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{nil, []string{"check_disk", "clean_logs", "ask_human"}},
		{[]string{"ask_human", "check_disk"}, []string{"check_disk", "ask_human"}}, // the job's order
		{[]string{"nope"}, []string{}},
	} {
		if got := agent.Names(agent.Select(tools, tc.names)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Select(%v) = %v, want %v", tc.names, got, tc.want)
		}
	}
	if tl, ok := agent.Find(tools, "clean_logs"); !ok || tl.Name != "clean_logs" {
		t.Errorf("Find(clean_logs) = %v, %v", tl, ok)
	}
	if _, ok := agent.Find(tools, "nope"); ok {
		t.Error("Find(nope) found a tool")
	}
}
