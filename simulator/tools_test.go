package simulator_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

// demoTools are the embedded demo's two tools, as go-openai sends them.
func demoTools() []openai.Tool {
	def := func(name, desc string) openai.Tool {
		return openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
			Name: name, Description: desc, Parameters: json.RawMessage(`{"type":"object","properties":{}}`),
		}}
	}
	return []openai.Tool{def("check_disk", "Check current disk usage"), def("clean_logs", "Delete old logs")}
}

// toolRequest is a request with the demo tools, the user message content
// and then the rest of the conversation.
func toolRequest(content string, rest ...openai.ChatCompletionMessage) openai.ChatCompletionRequest {
	req := userRequest(content)
	req.Tools = demoTools()
	req.Messages = append(req.Messages, rest...)
	return req
}

// callID is the documented call id rule, computed independently.
func callID(content, name, index, step string) string {
	sum := sha256.Sum256([]byte(key(content) + "\x00" + name + "\x00" + index + "\x00" + step))
	return "call_" + hex.EncodeToString(sum[:])[:16]
}

// toolResults answers calls with one tool message each, in order.
func toolResults(calls []openai.ToolCall, results ...string) []openai.ChatCompletionMessage {
	msgs := make([]openai.ChatCompletionMessage, len(calls))
	for i, tc := range calls {
		msgs[i] = openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: tc.ID, Content: results[i]}
	}
	return msgs
}

// callTokens is the documented completion token count of tool calls: the
// tokens of the tool_calls array's JSON.
func callTokens(t *testing.T, model string, calls []openai.ToolCall) int {
	t.Helper()
	tc := make([]tasks.ToolCall, len(calls))
	for i, c := range calls {
		tc[i] = tasks.ToolCall{ID: c.ID, Type: string(c.Type), Function: tasks.FunctionCall{Name: c.Function.Name, Arguments: c.Function.Arguments}}
	}
	b, err := json.Marshal(tc)
	if err != nil {
		t.Fatal(err)
	}
	return tokens.ForModel(model).Text(string(b))
}

// TestToolConversation runs the two steps of a tool loop with go-openai
// against the simulator mounted in an httptest server.
func TestToolConversation(t *testing.T) {
	t.Parallel()
	srv, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	cfg := openai.DefaultConfig("sk-test")
	cfg.BaseURL = ts.URL + "/v1"
	cfg.HTTPClient = ts.Client()
	client := openai.NewClientWithConfig(cfg)

	content := "tidy the disk #tools:check_disk,clean_logs"
	req := toolRequest(content)
	first, err := client.CreateChatCompletion(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	choice := first.Choices[0]
	if choice.FinishReason != openai.FinishReasonToolCalls || choice.Message.Role != "assistant" || choice.Message.Content != "" {
		t.Errorf("first answer: finish %q role %q content %q, want tool_calls from the assistant without content",
			choice.FinishReason, choice.Message.Role, choice.Message.Content)
	}
	calls := choice.Message.ToolCalls
	if len(calls) != 2 {
		t.Fatalf("tool calls = %+v, want 2", calls)
	}
	for i, name := range []string{"check_disk", "clean_logs"} {
		c := calls[i]
		if c.Type != openai.ToolTypeFunction || c.Function.Name != name || c.Function.Arguments != "{}" {
			t.Errorf("call %d = %+v, want %s with {}", i, c, name)
		}
		if want := callID(content, name, itoa(i), "0"); c.ID != want || simulator.ToolCallID(key(content), name, i, 0) != want {
			t.Errorf("call %d id = %q, want %q", i, c.ID, want)
		}
	}
	wantUsage := tokens.ForModel(req.Model).Messages([]tasks.Message{{Role: "user", Content: content}})
	if first.Usage.PromptTokens != wantUsage || first.Usage.CompletionTokens != callTokens(t, req.Model, calls) {
		t.Errorf("usage = %+v, want %d prompt and the calls' JSON as completion tokens", first.Usage, wantUsage)
	}

	req.Messages = append(req.Messages, choice.Message)
	req.Messages = append(req.Messages, toolResults(calls, "r1", "r2")...)
	second, err := client.CreateChatCompletion(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := "mock:" + key("r1|r2")
	if c := second.Choices[0]; c.Message.Content != want || c.FinishReason != openai.FinishReasonStop || len(c.Message.ToolCalls) != 0 {
		t.Errorf("second answer = %q finish %q calls %v, want %q and stop", c.Message.Content, c.FinishReason, c.Message.ToolCalls, want)
	}
	if simulator.ToolReply("r1", "r2") != want {
		t.Errorf("ToolReply = %q, want %q", simulator.ToolReply("r1", "r2"), want)
	}

	// Results are taken in the order of the calls, not of the tool messages.
	res := toolResults(calls, "r1", "r2")
	req.Messages = append(req.Messages[:2], res[1], res[0])
	if again, err := client.CreateChatCompletion(t.Context(), req); err != nil || again.Choices[0].Message.Content != want {
		t.Errorf("tool messages in reverse order: %+v, %v, want %q", again.Choices, err, want)
	}

	st := srv.Stats()
	if st.ByContent[key(content)] != 3 || st.ByStatus["200"] != 3 {
		t.Errorf("stats by_content %v by_status %v, want 3 calls for the user message's key", st.ByContent, st.ByStatus)
	}
	if st.TokensOut != first.Usage.CompletionTokens+2*second.Usage.CompletionTokens {
		t.Errorf("tokens_out = %d, want the tool calls' and the replies' tokens", st.TokensOut)
	}
}

func TestToolCallWire(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	resp, body := b.do(t, http.MethodPost, "/v1/chat/completions", toolRequest("wire #tools:check_disk"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	var got struct {
		Choices []struct {
			Message      map[string]json.RawMessage `json:"message"`
			FinishReason string                     `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	msg := got.Choices[0].Message
	if string(msg["content"]) != "null" || got.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("message %s finish %q, want content null and tool_calls", body, got.Choices[0].FinishReason)
	}
	wantCalls := `[{"id":"` + callID("wire #tools:check_disk", "check_disk", "0", "0") +
		`","type":"function","function":{"name":"check_disk","arguments":"{}"}}]`
	if string(msg["tool_calls"]) != wantCalls {
		t.Errorf("tool_calls = %s\nwant         %s", msg["tool_calls"], wantCalls)
	}
}

func TestToolDirectives(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})

	t.Run("args", func(t *testing.T) {
		t.Parallel()
		args := `{"older_than_days": 7, "dirs": ["/var/log}", "a \"quoted\" {"]}`
		resp, err := b.openai.CreateChatCompletion(t.Context(), toolRequest(
			"clean #tools:check_disk,clean_logs #args:clean_logs:"+args+" then report"))
		if err != nil {
			t.Fatal(err)
		}
		calls := resp.Choices[0].Message.ToolCalls
		if len(calls) != 2 || calls[0].Function.Arguments != "{}" || calls[1].Function.Arguments != args {
			t.Errorf("calls = %+v, want check_disk {} and clean_logs %s", calls, args)
		}
	})

	t.Run("tool-loop calls at every step with new ids", func(t *testing.T) {
		t.Parallel()
		content := "loop forever #tool-loop:check_disk #args:check_disk:{\"path\":\"/\"}"
		req := toolRequest(content)
		seen := map[string]bool{}
		for step := range 4 {
			resp, err := b.openai.CreateChatCompletion(t.Context(), req)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			msg := resp.Choices[0].Message
			if resp.Choices[0].FinishReason != openai.FinishReasonToolCalls || len(msg.ToolCalls) != 1 {
				t.Fatalf("step %d: %+v, want one tool call", step, resp.Choices[0])
			}
			c := msg.ToolCalls[0]
			if c.Function.Name != "check_disk" || c.Function.Arguments != `{"path":"/"}` || c.ID != callID(content, "check_disk", "0", itoa(step)) {
				t.Errorf("step %d: call %+v", step, c)
			}
			if seen[c.ID] {
				t.Errorf("step %d: id %s repeats", step, c.ID)
			}
			seen[c.ID] = true
			req.Messages = append(req.Messages, msg)
			req.Messages = append(req.Messages, toolResults(msg.ToolCalls, "ok")...)
		}
	})

	t.Run("without tools the directives are ignored", func(t *testing.T) {
		t.Parallel()
		content := "no tools here #tools:check_disk"
		resp, err := b.chat(t, content)
		if err != nil || resp.Choices[0].Message.Content != "mock:"+key(content) || len(resp.Choices[0].Message.ToolCalls) != 0 {
			t.Fatalf("chat = %+v, %v, want the plain reply", resp.Choices, err)
		}
	})

	t.Run("tool_choice none suppresses the calls", func(t *testing.T) {
		t.Parallel()
		content := "talk only #tools:check_disk"
		req := toolRequest(content)
		req.ToolChoice = "none"
		resp, err := b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil || resp.Choices[0].Message.Content != "mock:"+key(content) || resp.Choices[0].FinishReason != openai.FinishReasonStop {
			t.Fatalf("chat = %+v, %v, want the plain reply", resp.Choices, err)
		}
	})

	t.Run("tool_choice and parallel_tool_calls are accepted", func(t *testing.T) {
		t.Parallel()
		req := toolRequest("named #tools:check_disk,clean_logs")
		req.ToolChoice = openai.ToolChoice{Type: openai.ToolTypeFunction, Function: openai.ToolFunction{Name: "clean_logs"}}
		req.ParallelToolCalls = false
		resp, err := b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil || len(resp.Choices[0].Message.ToolCalls) != 2 {
			t.Fatalf("chat = %+v, %v, want the directive's two calls", resp.Choices, err)
		}
	})

	t.Run("answered history without a directive gets the tool reply", func(t *testing.T) {
		t.Parallel()
		calls := []openai.ToolCall{{ID: "call_given", Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: "check_disk", Arguments: "{}"}}}
		req := toolRequest("resumed", openai.ChatCompletionMessage{Role: "assistant", ToolCalls: calls})
		req.Messages = append(req.Messages, toolResults(calls, "disk 91% full")...)
		resp, err := b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil || resp.Choices[0].Message.Content != simulator.ToolReply("disk 91% full") {
			t.Fatalf("chat = %+v, %v, want the tool reply", resp.Choices, err)
		}

		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
		resp, err = b.openai.CreateChatCompletion(t.Context(), req)
		want := `{"reply":"` + simulator.ToolReply("disk 91% full") + `"}`
		if err != nil || resp.Choices[0].Message.Content != want {
			t.Fatalf("json_object: %+v, %v, want %s", resp.Choices, err, want)
		}

		req.ResponseFormat = schemaChat("").ResponseFormat
		resp, err = b.openai.CreateChatCompletion(t.Context(), req)
		want = `{"label":"spam","reason":"` + simulator.ToolReply("disk 91% full") + `"}`
		if err != nil || resp.Choices[0].Message.Content != want {
			t.Fatalf("json_schema: %+v, %v, want %s", resp.Choices, err, want)
		}
	})

	t.Run("fail-first applies before the tool answer", func(t *testing.T) {
		t.Parallel()
		req := toolRequest("flaky tools #fail-first:1:500 #tools:check_disk")
		_, err := b.openai.CreateChatCompletion(t.Context(), req)
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 500 {
			t.Fatalf("first call: err = %v, want a 500", err)
		}
		resp, err := b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil || len(resp.Choices[0].Message.ToolCalls) != 1 {
			t.Fatalf("second call: %+v, %v, want the tool call", resp.Choices, err)
		}
	})

	t.Run("nousage keeps the tool calls", func(t *testing.T) {
		t.Parallel()
		resp, err := b.openai.CreateChatCompletion(t.Context(), toolRequest("quiet #fail:nousage #tools:clean_logs"))
		if err != nil || len(resp.Choices[0].Message.ToolCalls) != 1 || resp.Usage.TotalTokens != 0 {
			t.Fatalf("chat = %+v usage %+v, %v, want a tool call without usage", resp.Choices, resp.Usage, err)
		}
	})
}

func TestToolRequestErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	user := func(content string) map[string]any { return map[string]any{"role": "user", "content": content} }
	asks := func(ids ...string) map[string]any {
		var calls []any
		for _, id := range ids {
			calls = append(calls, map[string]any{"id": id, "type": "function", "function": map[string]any{"name": "check_disk", "arguments": "{}"}})
		}
		return map[string]any{"role": "assistant", "content": nil, "tool_calls": calls}
	}
	answer := func(id string) map[string]any {
		return map[string]any{"role": "tool", "tool_call_id": id, "content": "ok"}
	}
	tools := demoTools()
	body := func(msgs ...map[string]any) map[string]any {
		return map[string]any{"model": "gpt-4o-mini", "tools": tools, "messages": msgs}
	}
	with := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
	const preceeding = "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
	tests := []struct {
		name      string
		body      map[string]any
		wantParam any
		wantInMsg string
	}{
		{"unknown tool", body(user("go #tools:check_disk,clean_log")), "messages", `"clean_log"`},
		{"unknown loop tool", body(user("go #tool-loop:check")), "messages", `#tool-loop names tool "check"`},
		{"args not JSON", body(user(`go #tools:check_disk #args:check_disk:{"a":}`)), "messages", "#args:check_disk:"},
		{"args unterminated", body(user(`go #tools:check_disk #args:check_disk:{"a":1`)), "messages", "unterminated"},
		{"args not an object", body(user(`go #tools:check_disk #args:check_disk:[1]`)), "messages", "JSON object"},
		{"args for an uncalled tool", body(user(`go #tools:check_disk #args:clean_logs:{}`)), "messages", "#args:clean_logs:"},
		{"args malformed", body(user(`go #tools:check_disk #args:{}`)), "messages", "#args"},
		{"tools and tool-loop", body(user("go #tools:check_disk #tool-loop:clean_logs")), "messages", "exclude"},
		{"tools without names", body(user("go #tools: now")), "messages", "#tools"},
		{"tools with a space", body(user("go #tools:check_disk, clean_logs")), "messages", "without spaces"},
		{"tool-loop without a name", body(user("go #tool-loop:")), "messages", "#tool-loop"},
		{"unknown tool_call_id", body(user("go"), asks("call_a"), answer("call_b")), "messages[2].role", preceeding},
		{"tool message without a call", body(user("go"), answer("call_a")), "messages[1].role", preceeding},
		{"tool message twice", body(user("go"), asks("call_a"), answer("call_a"), answer("call_a")), "messages[3].role", preceeding},
		{"tool message after another message", body(user("go"), asks("call_a"), answer("call_a"), user("more"), answer("call_a")), "messages[4].role", preceeding},
		{"tool message without id", body(user("go"), asks("call_a"), map[string]any{"role": "tool", "content": "ok"}), "messages[2].tool_call_id", "tool_call_id"},
		{"unanswered call", body(user("go"), asks("call_a", "call_b"), answer("call_a"), user("next")), "messages[1].role",
			"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_b"},
		{"unanswered at the end", body(user("go"), asks("call_a", "call_b")), "messages[1].role", "did not have response messages: call_a, call_b"},
		{"tool call without id", body(user("go"), asks("")), "messages[1].tool_calls[0].id", "Missing required parameter"},
		{"tool call without type", body(user("go"), with(asks("call_a"), "tool_calls", []any{map[string]any{"id": "call_a", "function": map[string]any{"name": "x"}}})),
			"messages[1].tool_calls[0].type", "Supported values"},
		{"tool_choice without tools", map[string]any{"model": "m", "tool_choice": "auto", "messages": []any{user("go")}},
			"tool_choice", "only allowed when 'tools' are specified"},
		{"parallel_tool_calls without tools", map[string]any{"model": "m", "parallel_tool_calls": true, "messages": []any{user("go")}},
			"parallel_tool_calls", "only allowed when 'tools' are specified"},
		{"empty tools", with(body(user("go")), "tools", []any{}), "tools", "empty array"},
		{"tool without function", with(body(user("go")), "tools", []any{map[string]any{"type": "function"}}), "tools[0].function", "Missing required parameter"},
		{"tool of another type", with(body(user("go")), "tools", []any{map[string]any{"type": "retrieval"}}), "tools[0].type", "retrieval"},
		{"tool with a bad name", with(body(user("go")), "tools", []any{map[string]any{"type": "function", "function": map[string]any{"name": "check disk"}}}),
			"tools[0].function.name", "pattern"},
		{"bad tool_choice", with(body(user("go")), "tool_choice", "always"), "tool_choice", "'required'"},
		{"tool_choice names an unknown tool", with(body(user("go")), "tool_choice", map[string]any{"type": "function", "function": map[string]any{"name": "nope"}}),
			"tool_choice.function.name", `"nope"`},
	}
	for _, tt := range tests {
		resp, got := b.do(t, http.MethodPost, "/v1/chat/completions", tt.body, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400 (%s)", tt.name, resp.StatusCode, got)
			continue
		}
		e := decodeError(t, got)
		if e.Error.Type != "invalid_request_error" || e.Error.Param != tt.wantParam || !strings.Contains(e.Error.Message, tt.wantInMsg) {
			t.Errorf("%s: error = %+v, want param %v and %q in message", tt.name, e.Error, tt.wantParam, tt.wantInMsg)
		}
	}

	// go-openai surfaces the same 400 as an *openai.APIError.
	_, err := b.openai.CreateChatCompletion(t.Context(), toolRequest("typo #tools:chek_disk"))
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || !strings.Contains(apiErr.Message, "chek_disk") {
		t.Errorf("err = %v, want a 400 naming chek_disk", err)
	}
}
