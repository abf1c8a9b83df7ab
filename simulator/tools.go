package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llmfleet/llmfleet/tasks"
)

// ToolReply returns the content of the answer to tool results: ReplyPrefix
// followed by the Key of the results joined by "|", in the order of the
// calls in the assistant message they answer. A test that knows what its
// tools returned can check that every result reached the model.
func ToolReply(results ...string) string {
	return ReplyPrefix + Key(strings.Join(results, "|"))
}

// ToolCallID returns the id of a tool call the simulator makes: "call_"
// followed by the first 16 hex digits of the SHA-256 of key, name, index and
// step separated by NUL bytes. key is the Key of the last user message,
// index the call's position in its message (from 0), step the number of
// assistant messages with tool calls between the last user message and the
// request's end. The ids are the same on every run, and differ per step so a
// loop never reuses one.
func ToolCallID(key, name string, index, step int) string {
	sum := sha256.Sum256([]byte(key + "\x00" + name + "\x00" + strconv.Itoa(index) + "\x00" + strconv.Itoa(step)))
	return "call_" + hex.EncodeToString(sum[:8])
}

// chatTool is one entry of a request's tools; the simulator needs its name.
type chatTool struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// reToolName is OpenAI's pattern for function names.
var reToolName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// toolNames returns the names of the request's tools, in order.
func (q *chatRequest) toolNames() []string {
	names := make([]string, 0, len(q.Tools))
	for _, t := range q.Tools {
		names = append(names, t.Function.Name) // validated non-nil
	}
	return names
}

// invalidTools returns OpenAI's message and param for bad tools,
// tool_choice or parallel_tool_calls, or "". Rejecting what OpenAI rejects
// keeps a client bug from passing here and failing in production.
func (q *chatRequest) invalidTools() (msg string, param any) {
	if q.Tools != nil && len(q.Tools) == 0 {
		return "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.", "tools"
	}
	for i, t := range q.Tools {
		switch {
		case t.Type != "function":
			return fmt.Sprintf("Invalid value: %q. Supported values are: 'function'.", t.Type), fmt.Sprintf("tools[%d].type", i)
		case t.Function == nil:
			return fmt.Sprintf("Missing required parameter: 'tools[%d].function'.", i), fmt.Sprintf("tools[%d].function", i)
		case !reToolName.MatchString(t.Function.Name):
			return fmt.Sprintf("Invalid 'tools[%d].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", i),
				fmt.Sprintf("tools[%d].function.name", i)
		}
	}
	if len(q.Tools) == 0 {
		if present(q.ToolChoice) {
			return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice"
		}
		if q.ParallelToolCalls != nil {
			return "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls"
		}
		return "", nil
	}
	return q.invalidToolChoice()
}

// invalidToolChoice checks tool_choice: "none", "auto", "required" or
// {"type":"function","function":{"name":NAME}} with NAME among the tools.
func (q *chatRequest) invalidToolChoice() (msg string, param any) {
	if !present(q.ToolChoice) {
		return "", nil
	}
	var mode string
	if json.Unmarshal(q.ToolChoice, &mode) == nil {
		if mode != "none" && mode != "auto" && mode != "required" {
			return fmt.Sprintf("Invalid value: %q. Supported values are: 'none', 'auto', and 'required'.", mode), "tool_choice"
		}
		return "", nil
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(q.ToolChoice, &named) != nil || named.Type != "function" {
		return `Invalid 'tool_choice': expected "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.`, "tool_choice"
	}
	if !slices.Contains(q.toolNames(), named.Function.Name) {
		return fmt.Sprintf("Invalid value for 'tool_choice': function %q not found in 'tools'.", named.Function.Name), "tool_choice.function.name"
	}
	return "", nil
}

// present reports whether an optional raw JSON field was given.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// callsNoTools reports whether tool_choice forbids tool calls.
func (q *chatRequest) callsNoTools() bool {
	var mode string
	return json.Unmarshal(q.ToolChoice, &mode) == nil && mode == "none"
}

// invalidToolMessages checks OpenAI's message rules for tool calls: each
// assistant message with tool_calls is followed by one tool message per
// call id, and a tool message answers a pending call of the assistant
// message before it. Whatever a request's tools, OpenAI rejects transcripts
// that break them; a worker resuming a checkpointed loop must rebuild them
// exactly.
func invalidToolMessages(msgs []tasks.Message) (msg string, param any) {
	var pending []string // ids of the open tool_calls message not answered yet
	open := -1           // the index of that message
	for i, m := range msgs {
		if m.Role == "tool" {
			if m.ToolCallID == "" {
				return "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
					fmt.Sprintf("messages[%d].tool_call_id", i)
			}
			j := slices.Index(pending, m.ToolCallID)
			if j < 0 { // no open call, an unknown id, or one answered already
				return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
					fmt.Sprintf("messages[%d].role", i)
			}
			pending = slices.Delete(pending, j, j+1)
			continue
		}
		if len(pending) > 0 {
			return unanswered(open, pending)
		}
		if msg, param := invalidToolCalls(i, m.ToolCalls); msg != "" {
			return msg, param
		}
		open, pending = i, nil
		for _, tc := range m.ToolCalls {
			pending = append(pending, tc.ID)
		}
	}
	if len(pending) > 0 {
		return unanswered(open, pending)
	}
	return "", nil
}

func unanswered(i int, ids []string) (string, any) {
	return "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. " +
		"The following tool_call_ids did not have response messages: " + strings.Join(ids, ", "), fmt.Sprintf("messages[%d].role", i)
}

// invalidToolCalls checks the fields OpenAI requires in the tool calls of
// message i.
func invalidToolCalls(i int, calls []tasks.ToolCall) (string, any) {
	for j, tc := range calls {
		at := fmt.Sprintf("messages[%d].tool_calls[%d]", i, j)
		switch {
		case tc.ID == "":
			return fmt.Sprintf("Missing required parameter: '%s.id'.", at), at + ".id"
		case tc.Type != "function":
			return fmt.Sprintf("Invalid value: %q. Supported values are: 'function'.", tc.Type), at + ".type"
		case tc.Function.Name == "":
			return fmt.Sprintf("Missing required parameter: '%s.function.name'.", at), at + ".function.name"
		}
	}
	return "", nil
}

// toolState is where a conversation stands after its last user message.
type toolState struct {
	step    int      // assistant messages with tool_calls
	results []string // the tool results of the last of them, in call order
}

// toolStateOf reads msgs, which invalidToolMessages accepted: every call has
// exactly one tool message, right after its assistant message.
func toolStateOf(msgs []tasks.Message) toolState {
	from := 0
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			from = i + 1
			break
		}
	}
	var st toolState
	for i := from; i < len(msgs); i++ {
		if len(msgs[i].ToolCalls) == 0 {
			continue
		}
		st.step++
		byID := map[string]string{}
		for _, m := range msgs[i+1:] {
			if m.Role != "tool" {
				break
			}
			byID[m.ToolCallID] = m.Content
		}
		st.results = st.results[:0]
		for _, tc := range msgs[i].ToolCalls {
			st.results = append(st.results, byID[tc.ID])
		}
	}
	return st
}

// plan decides what a successful answer to c is when the request has tools:
// tool calls (#tools before any answered call, #tool-loop always), or
// ToolReply of the last tool results. An error names a directive's tool that
// the request does not declare, so a typo in a test shows.
func (c *call) plan(d directives) error {
	if len(c.req.Tools) == 0 {
		return nil // a request without tools answers as if it had none
	}
	names := c.req.toolNames()
	called, directive := d.tools, "#tools"
	if d.toolLoop != "" {
		called, directive = []string{d.toolLoop}, "#tool-loop"
	}
	for _, n := range called {
		if !slices.Contains(names, n) {
			return fmt.Errorf("directive %s names tool %q, which is not among the request's tools (%s)",
				directive, n, strings.Join(names, ", "))
		}
	}
	st := toolStateOf(c.req.Messages)
	calling := !c.req.callsNoTools()
	switch {
	case calling && d.toolLoop != "":
		c.calls = c.toolCalls(called, st.step, d.args)
	case calling && st.step == 0 && len(d.tools) > 0:
		c.calls = c.toolCalls(called, st.step, d.args)
	case st.step > 0:
		c.reply = c.textReply(ToolReply(st.results...))
	}
	return nil
}

// toolCalls returns one call per name, arguments "{}" unless args has some.
func (c *call) toolCalls(names []string, step int, args map[string]string) []tasks.ToolCall {
	calls := make([]tasks.ToolCall, len(names))
	for i, n := range names {
		a, ok := args[n]
		if !ok {
			a = "{}"
		}
		calls[i] = tasks.ToolCall{
			ID:       ToolCallID(c.key, n, i, step),
			Type:     "function",
			Function: tasks.FunctionCall{Name: n, Arguments: a},
		}
	}
	return calls
}

// callTokens counts the completion tokens of tool calls as the tokens of
// their JSON: OpenAI does not publish its formula, and this one is stable
// and grows with the arguments, which is what budgets need.
func (c *call) callTokens() int {
	b, _ := json.Marshal(c.calls) // strings only: cannot fail
	return c.counter.Text(string(b))
}
