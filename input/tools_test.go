package input_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// withTools is a job with three tools (run --tools FILE).
var withTools = input.Options{Tools: []string{"check_disk", "clean_logs", "ask_human"}}

// Message builders for agent items, as JSON text.

const userMsg = `{"role":"user","content":"is the disk full?"}`

// call is one tool call asking check_disk with no arguments.
func call(id string) string {
	return `{"id":"` + id + `","type":"function","function":{"name":"check_disk","arguments":"{}"}}`
}

// calls is an assistant message making the given calls, with null content.
func calls(cs ...string) string {
	return `{"role":"assistant","content":null,"tool_calls":[` + strings.Join(cs, ",") + `]}`
}

// reply is a tool message answering call id.
func reply(id string) string {
	return `{"role":"tool","tool_call_id":"` + id + `","content":"42% used"}`
}

// withCall is an assistant message making one call given as JSON text.
func withCall(c string) string { return calls(c) }

// msgsItem is a JSONL item with the given messages.
func msgsItem(id string, msgs ...string) string {
	return `{"id":"` + id + `","messages":[` + strings.Join(msgs, ",") + `]}`
}

// csvCell quotes s as a CSV cell.
func csvCell(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// TestToolRejections covers every way an agent item can be wrong: the bad
// line is rejected with exactly the message given, naming the field (and
// the message index for messages), and the good lines around it are
// accepted.
func TestToolRejections(t *testing.T) {
	t.Parallel()
	const good1, good2 = `{"id":"g1","prompt":"one"}`, `{"id":"g2","prompt":"two"}`
	const jobTools = "check_disk, clean_logs, ask_human"
	const csvHead = "id,prompt,tools,tool_choice,parallel_tool_calls"
	const csvMsgsHead = "id,prompt,messages" // good rows use prompt, the bad one messages
	csvGood1, csvGood2 := "g1,one,,,", "g2,two,,,"
	item := func(extra string) string { return `{"id":"x","prompt":"p",` + extra + `}` }
	tests := []struct {
		name string
		file string
		opts *input.Options // default withTools
		head string         // CSV header; default csvHead
		in   string         // one bad item: JSONL, or a CSV record under head
		msg  string         // the whole rejection message
	}{
		// tools
		{name: "tools in a job without tools", opts: &input.Options{}, in: item(`"tools":["check_disk"]`),
			msg: "item names tools but the job has none: pass run --tools FILE"},
		{name: "tools names an unknown tool", in: item(`"tools":["check_disk","rm_rf"]`),
			msg: `tools[1] "rm_rf" is not one of the job's tools (` + jobTools + `)`},
		{name: "tools repeats a name", in: item(`"tools":["clean_logs","check_disk","clean_logs"]`),
			msg: `tools[2] "clean_logs" repeats tools[0]`},
		{name: "tools empty name", in: item(`"tools":[""]`),
			msg: "tools[0] is empty: want a tool name"},
		{name: "tools not strings", in: item(`"tools":["check_disk",{"name":"clean_logs"}]`),
			msg: `tools[1] must be a tool name (a string), got {"name":"clean_logs"}`},
		{name: "tools not an array", in: item(`"tools":"check_disk"`),
			msg: `tools must be an array of tool names, got "check_disk"`},
		{name: "tools empty array", in: item(`"tools":[]`),
			msg: "tools is empty: omit it to give the item all of the job's tools"},
		{name: "tools names are not trimmed in JSON", in: item(`"tools":[" check_disk"]`),
			msg: `tools[0] " check_disk" is not one of the job's tools (` + jobTools + `)`},
		{name: "CSV tools in a job without tools", file: "in.csv", opts: &input.Options{}, in: "x,p,check_disk,,",
			msg: "item names tools but the job has none: pass run --tools FILE"},
		{name: "CSV tools list names an unknown tool", file: "in.csv", in: `x,p," check_disk , rm_rf",,`,
			msg: `tools[1] "rm_rf" is not one of the job's tools (` + jobTools + `)`},
		{name: "CSV tools list with an empty name", file: "in.csv", in: `x,p,"check_disk,",,`,
			msg: "tools[1] is empty: want a tool name"},
		{name: "CSV tools list repeats a name", file: "in.csv", in: `x,p,"check_disk,check_disk",,`,
			msg: `tools[1] "check_disk" repeats tools[0]`},
		{name: "CSV tools malformed JSON array", file: "in.csv", in: `x,p,[check_disk],,`,
			msg: "tools must be a JSON array of tool names or a comma-separated list: malformed JSON: invalid character 'c' looking for beginning of value"},
		{name: "CSV tools JSON array names an unknown tool", file: "in.csv", in: `x,p,` + csvCell(`["rm_rf"]`) + `,,`,
			msg: `tools[0] "rm_rf" is not one of the job's tools (` + jobTools + `)`},

		// tool_choice
		{name: "tool_choice in a job without tools", opts: &input.Options{}, in: item(`"tool_choice":"auto"`),
			msg: "tool_choice needs tools but the job has none: pass run --tools FILE"},
		{name: "tool_choice unknown string", in: item(`"tool_choice":"always"`),
			msg: `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":NAME}}, got "always"`},
		{name: "tool_choice number", in: item(`"tool_choice":1`),
			msg: `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":NAME}}, got 1`},
		{name: "tool_choice type not function", in: item(`"tool_choice":{"type":"tool","function":{"name":"check_disk"}}`),
			msg: `tool_choice.type must be "function", got "tool"`},
		{name: "tool_choice type missing", in: item(`"tool_choice":{"function":{"name":"check_disk"}}`),
			msg: `tool_choice.type is missing (want "function")`},
		{name: "tool_choice function missing", in: item(`"tool_choice":{"type":"function"}`),
			msg: `tool_choice.function is missing (want {"name":NAME})`},
		{name: "tool_choice function not an object", in: item(`"tool_choice":{"type":"function","function":"check_disk"}`),
			msg: `tool_choice.function must be an object {"name":NAME}, got "check_disk"`},
		{name: "tool_choice name missing", in: item(`"tool_choice":{"type":"function","function":{}}`),
			msg: "tool_choice.function.name is missing"},
		{name: "tool_choice name empty", in: item(`"tool_choice":{"type":"function","function":{"name":""}}`),
			msg: `tool_choice.function.name must be a non-empty string, got ""`},
		{name: "tool_choice unknown key", in: item(`"tool_choice":{"type":"function","function":{"name":"check_disk"},"strict":true}`),
			msg: `tool_choice has unsupported key "strict" (only type and function)`},
		{name: "tool_choice function unknown key", in: item(`"tool_choice":{"type":"function","function":{"name":"check_disk","arguments":"{}"}}`),
			msg: `tool_choice.function has unsupported key "arguments" (only name)`},
		{name: "tool_choice names a tool the job lacks", in: item(`"tool_choice":{"type":"function","function":{"name":"rm_rf"}}`),
			msg: `tool_choice names tool "rm_rf", which is not one of the job's tools (` + jobTools + `)`},
		{name: "tool_choice names a tool the item lacks", in: item(`"tools":["check_disk","ask_human"],"tool_choice":{"type":"function","function":{"name":"clean_logs"}}`),
			msg: `tool_choice names tool "clean_logs", which is not one of the item's tools (check_disk, ask_human)`},
		{name: "tool_choice not checked against rejected tools", in: item(`"tools":["nope"],"tool_choice":{"type":"function","function":{"name":"clean_logs"}}`),
			msg: `tools[0] "nope" is not one of the job's tools (` + jobTools + `)`},
		{name: "CSV tool_choice unknown string", file: "in.csv", in: "x,p,,always,",
			msg: `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":NAME}}, got "always"`},
		{name: "CSV tool_choice is the bare word, not a JSON string", file: "in.csv", in: `x,p,,"""auto""",`,
			msg: `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":NAME}}, got "\"auto\""`},
		{name: "CSV tool_choice malformed object", file: "in.csv", in: `x,p,,{bad,`,
			msg: `tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":NAME}}, got "{bad"`},
		{name: "CSV tool_choice names a tool the item lacks", file: "in.csv",
			in:  `x,p,check_disk,` + csvCell(`{"type":"function","function":{"name":"ask_human"}}`) + `,`,
			msg: `tool_choice names tool "ask_human", which is not one of the item's tools (check_disk)`},

		// parallel_tool_calls
		{name: "parallel_tool_calls in a job without tools", opts: &input.Options{}, in: item(`"parallel_tool_calls":false`),
			msg: "parallel_tool_calls needs tools but the job has none: pass run --tools FILE"},
		{name: "parallel_tool_calls string", in: item(`"parallel_tool_calls":"true"`),
			msg: `parallel_tool_calls must be true or false, got "true"`},
		{name: "parallel_tool_calls number", in: item(`"parallel_tool_calls":1`),
			msg: "parallel_tool_calls must be true or false, got 1"},
		{name: "CSV parallel_tool_calls not a boolean", file: "in.csv", in: "x,p,,,yes",
			msg: `parallel_tool_calls must be true or false, got "yes"`},
		{name: "every tool field error is reported", opts: &input.Options{},
			in: item(`"tools":["check_disk"],"tool_choice":"auto","parallel_tool_calls":true`),
			msg: "item names tools but the job has none: pass run --tools FILE; " +
				"tool_choice needs tools but the job has none: pass run --tools FILE; " +
				"parallel_tool_calls needs tools but the job has none: pass run --tools FILE"},

		// messages: a job without tools
		{name: "tool_calls in a job without tools", opts: &input.Options{}, in: msgsItem("x", userMsg, calls(call("call_1")), reply("call_1")),
			msg: "messages hold tool calls but the job has no tools: pass run --tools FILE"},
		{name: "tool message in a job without tools", opts: &input.Options{}, in: msgsItem("x", userMsg, `{"role":"tool","content":"42"}`),
			msg: "messages hold tool calls but the job has no tools: pass run --tools FILE"},
		{name: "CSV tool_calls in a job without tools", file: "in.csv", opts: &input.Options{}, head: csvMsgsHead,
			in:  "x,," + csvCell(`[`+userMsg+","+calls(call("call_1"))+","+reply("call_1")+`]`),
			msg: "messages hold tool calls but the job has no tools: pass run --tools FILE"},

		// messages: one message's shape
		{name: "tool_calls on a user message", in: msgsItem("x", `{"role":"user","content":"hi","tool_calls":[`+call("call_1")+`]}`),
			msg: "messages[0] (user) has tool_calls: only an assistant message makes tool calls"},
		{name: "tool_call_id on an assistant message", in: msgsItem("x", userMsg, `{"role":"assistant","content":"ok","tool_call_id":"call_1"}`),
			msg: "messages[1] (assistant) has tool_call_id: only a tool message answers a tool call"},
		{name: "tool_calls empty", in: msgsItem("x", userMsg, `{"role":"assistant","content":"","tool_calls":[]}`),
			msg: "messages[1].tool_calls is empty: an assistant message without tool calls omits it"},
		{name: "tool_calls not an array", in: msgsItem("x", userMsg, `{"role":"assistant","tool_calls":`+call("call_1")+`}`),
			msg: `messages[1].tool_calls must be an array of {id, type, function} objects, got {"id":"call_1","type":"function","function":{"name":"check_d…`},
		{name: "tool call not an object", in: msgsItem("x", userMsg, withCall(`"call_1"`)),
			msg: `messages[1].tool_calls[0] must be an object {id, type, function}, got "call_1"`},
		{name: "tool call unknown key", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","index":0,"function":{"name":"check_disk","arguments":"{}"}}`)),
			msg: `messages[1].tool_calls[0] has unsupported key "index" (only id, type and function)`},
		{name: "tool call id missing", in: msgsItem("x", userMsg, withCall(`{"type":"function","function":{"name":"check_disk","arguments":"{}"}}`)),
			msg: "messages[1].tool_calls[0].id is missing"},
		{name: "tool call id empty", in: msgsItem("x", userMsg, calls(call("call_1"), call(""))),
			msg: `messages[1].tool_calls[1].id must be a non-empty string, got ""`},
		{name: "tool call id number", in: msgsItem("x", userMsg, withCall(`{"id":7,"type":"function","function":{"name":"check_disk","arguments":"{}"}}`)),
			msg: "messages[1].tool_calls[0].id must be a non-empty string, got 7"},
		{name: "tool call type missing", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","function":{"name":"check_disk","arguments":"{}"}}`)),
			msg: `messages[1].tool_calls[0].type is missing (want "function")`},
		{name: "tool call type not function", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"code_interpreter","function":{"name":"check_disk","arguments":"{}"}}`)),
			msg: `messages[1].tool_calls[0].type must be "function", got "code_interpreter"`},
		{name: "tool call function missing", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function"}`)),
			msg: "messages[1].tool_calls[0].function is missing (want {name, arguments})"},
		{name: "tool call function not an object", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":"check_disk"}`)),
			msg: `messages[1].tool_calls[0].function must be an object {name, arguments}, got "check_disk"`},
		{name: "tool call function unknown key", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":{"name":"check_disk","arguments":"{}","parameters":{}}}`)),
			msg: `messages[1].tool_calls[0].function has unsupported key "parameters" (only name and arguments)`},
		{name: "tool call name missing", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":{"arguments":"{}"}}`)),
			msg: "messages[1].tool_calls[0].function.name is missing"},
		{name: "tool call name empty", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":{"name":"","arguments":"{}"}}`)),
			msg: `messages[1].tool_calls[0].function.name must be a non-empty string, got ""`},
		{name: "tool call name not a string", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":{"name":["check_disk"],"arguments":"{}"}}`)),
			msg: `messages[1].tool_calls[0].function.name must be a non-empty string, got ["check_disk"]`},
		{name: "tool call arguments missing", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":{"name":"check_disk"}}`)),
			msg: `messages[1].tool_calls[0].function.arguments is missing (the arguments' JSON text, "{}" for none)`},
		{name: "tool call arguments an object", in: msgsItem("x", userMsg, withCall(`{"id":"call_1","type":"function","function":{"name":"check_disk","arguments":{"path":"/"}}}`)),
			msg: `messages[1].tool_calls[0].function.arguments must be a string (the arguments' JSON text), got {"path":"/"}`},
		{name: "tool message without tool_call_id", in: msgsItem("x", userMsg, calls(call("call_1")), `{"role":"tool","content":"42"}`),
			msg: "messages[2].tool_call_id is missing: a tool message names the call it answers"},
		{name: "tool message with empty tool_call_id", in: msgsItem("x", userMsg, calls(call("call_1")), `{"role":"tool","tool_call_id":"","content":"42"}`),
			msg: `messages[2].tool_call_id must be a non-empty string, got ""`},
		{name: "tool message without content", in: msgsItem("x", userMsg, calls(call("call_1")), `{"role":"tool","tool_call_id":"call_1"}`),
			msg: "messages[2].content is missing"},
		{name: "tool message with content parts", in: msgsItem("x", userMsg, calls(call("call_1")), `{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"42"}]}`),
			msg: "messages[2].content must be a string, got array (content parts are not supported)"},
		{name: "tool message with JSON content", in: msgsItem("x", userMsg, calls(call("call_1")), `{"role":"tool","tool_call_id":"call_1","content":{"used":42}}`),
			msg: `messages[2].content must be a string, got {"used":42}`},
		{name: "assistant with neither content nor tool_calls", in: msgsItem("x", userMsg, `{"role":"assistant","tool_calls":null}`),
			msg: "messages[1].content is missing"},
		{name: "assistant with tool_calls and non-string content", in: msgsItem("x", userMsg, `{"role":"assistant","content":5,"tool_calls":[`+call("call_1")+`]}`, reply("call_1")),
			msg: "messages[1].content must be a string, got 5"},
		{name: "legacy function_call key", in: msgsItem("x", userMsg, `{"role":"assistant","content":null,"function_call":{"name":"check_disk","arguments":"{}"}}`),
			msg: `messages[1] has unsupported key "function_call" (only role, content, name, tool_calls and tool_call_id)`},

		// messages: order
		{name: "call unanswered at the end", in: msgsItem("x", userMsg, calls(call("call_1"))),
			msg: `messages[1] (assistant) calls "call_1" but no tool message answers it before the messages end`},
		{name: "calls partly answered at the end", in: msgsItem("x", userMsg, calls(call("call_1"), call("call_2"), call("call_3")), reply("call_2")),
			msg: `messages[1] (assistant) calls "call_1", "call_3" but no tool message answers them before the messages end`},
		{name: "call unanswered before a user message", in: msgsItem("x", userMsg, calls(call("call_1")), userMsg),
			msg: `messages[1] (assistant) calls "call_1" but no tool message answers it before messages[2] (user)`},
		{name: "call unanswered before the next assistant message", in: msgsItem("x", userMsg, calls(call("call_1"), call("call_2")), reply("call_1"), calls(call("call_3")), reply("call_3")),
			msg: `messages[1] (assistant) calls "call_2" but no tool message answers it before messages[3] (assistant)`},
		{name: "reply to a call not made", in: msgsItem("x", userMsg, calls(call("call_1")), reply("call_9")),
			msg: `messages[2] (tool) answers call "call_9" which messages[1] did not make`},
		{name: "reply to an earlier group's call", in: msgsItem("x", userMsg, calls(call("call_1")), reply("call_1"), calls(call("call_2")), reply("call_1")),
			msg: `messages[4] (tool) answers call "call_1" which messages[3] did not make (messages[1] did: its replies belong right after it)`},
		{name: "two replies to one call", in: msgsItem("x", userMsg, calls(call("call_1"), call("call_2")), reply("call_1"), reply("call_1"), reply("call_2")),
			msg: `messages[3] (tool) answers call "call_1" again: messages[2] already answered it`},
		{name: "tool message first", in: msgsItem("x", reply("call_1"), userMsg),
			msg: `messages[0] (tool) answers call "call_1" but comes first: a tool message must follow the assistant message that made the call`},
		{name: "tool message after a user message", in: msgsItem("x", userMsg, reply("call_1")),
			msg: `messages[1] (tool) answers call "call_1" but follows messages[0] (user), not an assistant message with tool_calls or a tool reply to one`},
		{name: "tool message after an assistant answer", in: msgsItem("x", userMsg, `{"role":"assistant","content":"let me check"}`, reply("call_1")),
			msg: `messages[2] (tool) answers call "call_1" but follows messages[1] (assistant), not an assistant message with tool_calls or a tool reply to one`},
		{name: "reply after the group ended", in: msgsItem("x", userMsg, calls(call("call_1")), reply("call_1"), userMsg, reply("call_1")),
			msg: `messages[4] (tool) answers call "call_1" but follows messages[3] (user), not an assistant message with tool_calls or a tool reply to one (messages[1] made the call)`},
		{name: "call id repeated in one message", in: msgsItem("x", userMsg, calls(call("call_1"), call("call_1")), reply("call_1")),
			msg: `messages[1].tool_calls[1].id "call_1" is already used by messages[1].tool_calls[0]: call ids must be unique within an item`},
		{name: "call id reused by a later message", in: msgsItem("x", userMsg, calls(call("call_0"), call("call_1")), reply("call_0"), reply("call_1"), calls(call("call_1")), reply("call_1")),
			msg: `messages[4].tool_calls[0].id "call_1" is already used by messages[1].tool_calls[1]: call ids must be unique within an item`},
		{name: "indexes are the item's own with --system", opts: &input.Options{Tools: withTools.Tools, System: "be brief"},
			in:  msgsItem("x", userMsg, calls(call("call_1"))),
			msg: `messages[1] (assistant) calls "call_1" but no tool message answers it before the messages end`},
		{name: "CSV messages order", file: "in.csv", head: csvMsgsHead,
			in:  "x,," + csvCell(`[`+userMsg+","+calls(call("call_1"))+","+reply("call_9")+`]`),
			msg: `messages[2] (tool) answers call "call_9" which messages[1] did not make`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := withTools
			if tc.opts != nil {
				opts = *tc.opts
			}
			file, in, line := "in.jsonl", lines(good1, tc.in, good2), 2
			if tc.file == "in.csv" {
				head, g1, g2 := csvHead, csvGood1, csvGood2
				if tc.head != "" {
					head, g1, g2 = tc.head, "g1,one,", "g2,two,"
				}
				file, in, line = tc.file, lines(head, g1, tc.in, g2), 3
			}
			res := readAll(t, file, in, opts)
			if res.err != nil {
				t.Fatalf("read error: %v", res.err)
			}
			want := []input.Rejection{{Line: line, Error: tc.msg}}
			if !slices.Equal(res.rej, want) {
				t.Errorf("rejections\n %+v\nwant\n %+v", res.rej, want)
			}
			if ids := res.ids(); !slices.Equal(ids, []string{"g1", "g2"}) {
				t.Errorf("accepted %v, want [g1 g2]", ids)
			}
		})
	}
}

// TestToolItems: agent items are accepted and parsed as given.
func TestToolItems(t *testing.T) {
	t.Parallel()
	yes := true
	transcript := []string{
		`{"role":"system","content":"you run a fleet"}`,
		userMsg,
		// content null, two calls; arguments kept verbatim, even when not JSON.
		`{"role":"assistant","content":null,"tool_calls":[` + call("call_1") + `,` +
			`{"id":"call_2","type":"function","function":{"name":"clean_logs","arguments":"{\"days\": 7"}}]}`,
		// replies in any order
		`{"role":"tool","tool_call_id":"call_2","content":"deleted 3 files","name":"clean_logs"}`,
		`{"role":"tool","tool_call_id":"call_1","content":""}`,
		// content missing
		`{"role":"assistant","tool_calls":[` + call("call_3") + `]}`,
		reply("call_3"),
		// content a string, and a plain answer and question after it
		`{"role":"assistant","content":"checking again","tool_calls":[` + call("call_4") + `]}`,
		reply("call_4"),
		`{"role":"assistant","content":"all good"}`,
		`{"role":"user","content":"and now?","tool_calls":null,"tool_call_id":null}`,
	}
	wantMsgs := []tasks.Message{
		{Role: "system", Content: "you run a fleet"},
		{Role: "user", Content: "is the disk full?"},
		{Role: "assistant", ToolCalls: []tasks.ToolCall{
			{ID: "call_1", Type: "function", Function: tasks.FunctionCall{Name: "check_disk", Arguments: "{}"}},
			{ID: "call_2", Type: "function", Function: tasks.FunctionCall{Name: "clean_logs", Arguments: `{"days": 7`}},
		}},
		{Role: "tool", ToolCallID: "call_2", Content: "deleted 3 files", Name: "clean_logs"},
		{Role: "tool", ToolCallID: "call_1", Content: ""},
		{Role: "assistant", ToolCalls: []tasks.ToolCall{{ID: "call_3", Type: "function", Function: tasks.FunctionCall{Name: "check_disk", Arguments: "{}"}}}},
		{Role: "tool", ToolCallID: "call_3", Content: "42% used"},
		{Role: "assistant", Content: "checking again", ToolCalls: []tasks.ToolCall{{ID: "call_4", Type: "function", Function: tasks.FunctionCall{Name: "check_disk", Arguments: "{}"}}}},
		{Role: "tool", ToolCallID: "call_4", Content: "42% used"},
		{Role: "assistant", Content: "all good"},
		{Role: "user", Content: "and now?"},
	}
	in := lines(
		`{"id":"full","messages":[`+strings.Join(transcript, ",")+`],"tools":["clean_logs","check_disk"],`+
			`"tool_choice":{ "function" : {"name":"clean_logs"}, "type":"function" },"parallel_tool_calls":false}`,
		`{"id":"none","prompt":"p","tool_choice":"none"}`,
		`{"id":"auto","prompt":"p","tool_choice":"auto","parallel_tool_calls":true}`,
		`{"id":"required","prompt":"p","tool_choice":"required","tools":["ask_human"]}`,
		`{"id":"job-named","prompt":"p","tool_choice":{"type":"function","function":{"name":"ask_human"}}}`,
		`{"id":"nulls","prompt":"p","tools":null,"tool_choice":null,"parallel_tool_calls":null}`,
		// Ending on tool replies: the model answers next.
		msgsItem("resume", userMsg, calls(call("c1"), call("c2")), reply("c2"), reply("c1")),
	)
	res := readAll(t, "in.jsonl", in, withTools)
	if len(res.rej) != 0 {
		t.Fatalf("rejected: %v", res.rej)
	}
	got := map[string]tasks.Item{}
	for _, rec := range res.recs {
		got[rec.Item.ID] = rec.Item
	}
	full := got["full"]
	if !reflect.DeepEqual(full.Messages, wantMsgs) {
		t.Errorf("messages\n %+v\nwant\n %+v", full.Messages, wantMsgs)
	}
	if !slices.Equal(full.Tools, []string{"clean_logs", "check_disk"}) {
		t.Errorf("tools %q, want them as given", full.Tools)
	}
	if string(full.ToolChoice) != `{"type":"function","function":{"name":"clean_logs"}}` {
		t.Errorf("tool_choice %s, want it compact in OpenAI's key order", full.ToolChoice)
	}
	if full.ParallelToolCalls == nil || *full.ParallelToolCalls {
		t.Errorf("parallel_tool_calls %v, want false", full.ParallelToolCalls)
	}
	if f := full.Fields["tool_choice"]; f != `{"function":{"name":"clean_logs"},"type":"function"}` {
		t.Errorf("Fields[tool_choice] = %s, want the input compacted", f)
	}
	for id, want := range map[string]struct {
		choice   string
		tools    []string
		parallel *bool
	}{
		"none":      {`"none"`, nil, nil},
		"auto":      {`"auto"`, nil, &yes},
		"required":  {`"required"`, []string{"ask_human"}, nil},
		"job-named": {`{"type":"function","function":{"name":"ask_human"}}`, nil, nil},
		"nulls":     {"", nil, nil},
	} {
		it := got[id]
		if string(it.ToolChoice) != want.choice || !slices.Equal(it.Tools, want.tools) || !reflect.DeepEqual(it.ParallelToolCalls, want.parallel) {
			t.Errorf("%s: tool_choice %s, tools %q, parallel_tool_calls %v; want %s, %q, %v", id, it.ToolChoice, it.Tools, it.ParallelToolCalls, want.choice, want.tools, want.parallel)
		}
	}
	if n := len(got["resume"].Messages); n != 4 {
		t.Errorf("resume: %d messages, want 4", n)
	}

	// CSV: tools as a list or a JSON array, tool_choice bare or JSON,
	// parallel_tool_calls in any case, empty cells absent.
	csvIn := lines(
		"id,prompt,tools,tool_choice,parallel_tool_calls",
		`a,p," check_disk , ask_human ",required,TRUE`,
		`b,p,`+csvCell(`["clean_logs"]`)+`,`+csvCell(`{"type":"function","function":{"name":"clean_logs"}}`)+`, false `,
		`c,p,,,`,
		`d,p,ask_human, none ,`,
	)
	res = readAll(t, "in.csv", csvIn, withTools)
	if len(res.rej) != 0 || len(res.recs) != 4 {
		t.Fatalf("CSV: %d accepted, rejected %v", len(res.recs), res.rej)
	}
	a, b, c, d := res.recs[0].Item, res.recs[1].Item, res.recs[2].Item, res.recs[3].Item
	if !slices.Equal(a.Tools, []string{"check_disk", "ask_human"}) || string(a.ToolChoice) != `"required"` || a.ParallelToolCalls == nil || !*a.ParallelToolCalls {
		t.Errorf("CSV a: tools %q, tool_choice %s, parallel %v", a.Tools, a.ToolChoice, a.ParallelToolCalls)
	}
	if !slices.Equal(b.Tools, []string{"clean_logs"}) || string(b.ToolChoice) != `{"type":"function","function":{"name":"clean_logs"}}` || b.ParallelToolCalls == nil || *b.ParallelToolCalls {
		t.Errorf("CSV b: tools %q, tool_choice %s, parallel %v", b.Tools, b.ToolChoice, b.ParallelToolCalls)
	}
	if c.Tools != nil || c.ToolChoice != nil || c.ParallelToolCalls != nil {
		t.Errorf("CSV c: empty cells should be absent: %+v", c)
	}
	if !slices.Equal(d.Tools, []string{"ask_human"}) || string(d.ToolChoice) != `"none"` {
		t.Errorf("CSV d: tools %q, tool_choice %s", d.Tools, d.ToolChoice)
	}
	if want := map[string]string{"id": "a", "prompt": "p", "tools": " check_disk , ask_human ", "tool_choice": "required", "parallel_tool_calls": "TRUE"}; !maps.Equal(a.Fields, want) {
		t.Errorf("CSV a: Fields = %v, want %v", a.Fields, want)
	}

	// CSV messages with tool calls.
	msgs := `[` + userMsg + `,` + calls(call("call_1")) + `,` + reply("call_1") + `]`
	res = readAll(t, "in.csv", lines("id,messages", "m,"+csvCell(msgs)), withTools)
	if len(res.recs) != 1 {
		t.Fatalf("CSV messages rejected: %v", res.rej)
	}
	if m := res.recs[0].Item.Messages; len(m) != 3 || len(m[1].ToolCalls) != 1 || m[2].ToolCallID != "call_1" {
		t.Errorf("CSV messages: %+v", m)
	}

	// Null tool fields are absent also in a job without tools.
	res = readAll(t, "in.jsonl", lines(`{"id":"n","prompt":"p","tools":null,"tool_choice":null,"parallel_tool_calls":null}`,
		`{"id":"m","messages":[{"role":"user","content":"hi","tool_calls":null}]}`), input.Options{})
	if len(res.recs) != 2 {
		t.Errorf("job without tools: null tool fields rejected: %v", res.rej)
	}
}

// TestToolDuplicates: agent fields take part in "same item again": a
// tool_choice written with other spacing is the same item; other tools or
// another choice are different content. (Item.Fields keeps the input's
// compact text, so, as for metadata, other key order is other content.)
func TestToolDuplicates(t *testing.T) {
	t.Parallel()
	in := lines(
		`{"id":"a","prompt":"p","tools":["check_disk"],"tool_choice":{"type":"function","function":{"name":"check_disk"}}}`,
		`{"id":"a", "prompt":"p", "tools":[ "check_disk" ], "tool_choice":{ "type": "function", "function": { "name": "check_disk" } } }`,
		`{"id":"a","prompt":"p","tools":["clean_logs"]}`,
		`{"id":"a","prompt":"p","tools":["check_disk"],"tool_choice":"required"}`,
		msgsItem("b", userMsg, calls(call("c1")), reply("c1")),
		msgsItem("b", userMsg, calls(call("c1")), reply("c1")),
		msgsItem("b", userMsg, calls(call("c2")), reply("c2")),
	)
	res := readAll(t, "in.jsonl", in, withTools)
	if !slices.Equal(res.ids(), []string{"a", "b"}) || res.stats.DuplicatesCollapsed != 2 {
		t.Errorf("accepted %v, stats %+v; want a and b, 2 collapsed", res.ids(), res.stats)
	}
	want := []input.Rejection{
		{Line: 3, Error: `id "a" already used on line 1 with different content`},
		{Line: 4, Error: `id "a" already used on line 1 with different content`},
		{Line: 7, Error: `id "b" already used on line 5 with different content`},
	}
	if !slices.Equal(res.rej, want) {
		t.Errorf("rejections %v, want %v", res.rej, want)
	}
	// Derived ids depend on the tool fields.
	x := readAll(t, "in.jsonl", lines(`{"prompt":"p","tools":["check_disk"]}`, `{"prompt":"p","tools":["clean_logs"]}`, `{"prompt":"p"}`), withTools).ids()
	if len(x) != 3 || x[0] == x[1] || x[1] == x[2] || x[0] == x[2] {
		t.Errorf("derived ids %v: want three distinct ids", x)
	}
}

// TestCanonicalUnchanged pins the canonical bytes and derived id of items
// without agent fields, as they were before tasks.Item had any: the
// checkpoint compares them to tell a resubmitted item from a changed one,
// so they must not move. A job with tools does not change them either.
func TestCanonicalUnchanged(t *testing.T) {
	t.Parallel()
	in := lines(
		`{"id":"old-1","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi","name":"ann"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"}],`+
			`"model":"m1","max_tokens":100,"temperature":0.2,"top_p":1,"stop":["END"],"seed":-7,"response_format":{"type":"json_object"},"metadata":{"k":[1,2]},"note":"n"}`,
		`{"prompt":"derive me","temperature":0.5}`,
	)
	want := []string{
		`{"id":"old-1","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi","name":"ann"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"}],` +
			`"model":"m1","max_tokens":100,"temperature":0.2,"top_p":1,"stop":["END"],"seed":-7,"response_format":{"type":"json_object"},"metadata":{"k":[1,2]},` +
			`"fields":{"id":"old-1","max_tokens":"100","messages":"[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"hi\",\"name\":\"ann\"},{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":\"user\",\"content\":\"more\"}]",` +
			`"metadata":"{\"k\":[1,2]}","model":"m1","note":"n","response_format":"{\"type\":\"json_object\"}","seed":"-7","stop":"[\"END\"]","temperature":"0.2","top_p":"1"}}`,
		`{"id":"h77754fdd7ffc3ce5","messages":[{"role":"user","content":"derive me"}],"temperature":0.5,"fields":{"prompt":"derive me","temperature":"0.5"}}`,
	}
	for _, opts := range []input.Options{{}, withTools} {
		res := readAll(t, "in.jsonl", in, opts)
		if len(res.recs) != 2 {
			t.Fatalf("tools %q: rejected %v", opts.Tools, res.rej)
		}
		for i, rec := range res.recs {
			if got := string(rec.Item.Canonical()); got != want[i] {
				t.Errorf("tools %q: line %d canonical\n %s\nwant\n %s", opts.Tools, rec.Line, got, want[i])
			}
		}
		if id := res.recs[1].Item.ID; id != "h77754fdd7ffc3ce5" {
			t.Errorf("tools %q: derived id %s, want h77754fdd7ffc3ce5", opts.Tools, id)
		}
	}
	// The new fields are omitted when unset, and present when set.
	var m map[string]json.RawMessage
	it := tasks.Item{ID: "x", Messages: []tasks.Message{{Role: "user", Content: "c"}}}
	if err := json.Unmarshal(it.Canonical(), &m); err != nil || len(m) != 2 {
		t.Errorf("canonical of a bare item: %s", it.Canonical())
	}
}

// TestToolOptions: the job's tools are copied, so the caller may reuse its
// slice.
func TestToolOptions(t *testing.T) {
	t.Parallel()
	names := []string{"check_disk"}
	r, err := input.NewReader(strings.NewReader(lines(`{"id":"a","prompt":"p","tools":["check_disk"]}`)), "in.jsonl", input.Options{Tools: names})
	if err != nil {
		t.Fatal(err)
	}
	names[0] = "other"
	if _, err := r.Next(); err != nil {
		t.Errorf("Next: %v (rejections %v)", err, r.Rejections())
	}
}
