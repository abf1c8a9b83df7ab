package provider_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
)

var demoTools = []agent.Tool{
	{Name: "check_disk", Description: "Check disk usage", Parameters: json.RawMessage(`{"type":"object","properties":{"host":{"type":"string"}}}`)},
	{Name: "clean_logs", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
}

// The request carries the tools, the item's tool_choice and
// parallel_tool_calls, and earlier tool calls and replies, in OpenAI's
// wire shape.
func TestRequestCarriesTools(t *testing.T) {
	parallel := false
	it := &tasks.Item{
		Messages: []tasks.Message{
			{Role: "user", Content: "check"},
			{Role: "assistant", ToolCalls: []tasks.ToolCall{{ID: "call_1", Type: "function", Function: tasks.FunctionCall{Name: "check_disk", Arguments: `{"host":"a"}`}}}},
			{Role: "tool", ToolCallID: "call_1", Content: "91%"},
		},
		ToolChoice:        json.RawMessage(`{"type":"function","function":{"name":"check_disk"}}`),
		ParallelToolCalls: &parallel,
	}
	b, err := json.Marshal(provider.Request(it, "gpt-4o-mini", demoTools...))
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Tools []struct {
			Type     string `json:"type"`
			Function struct {
				Name       string          `json:"name"`
				Parameters json.RawMessage `json:"parameters"`
			} `json:"function"`
		} `json:"tools"`
		ToolChoice        json.RawMessage   `json:"tool_choice"`
		ParallelToolCalls *bool             `json:"parallel_tool_calls"`
		Messages          []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire.Tools) != 2 || wire.Tools[0].Type != "function" || wire.Tools[0].Function.Name != "check_disk" ||
		string(wire.Tools[0].Function.Parameters) != string(demoTools[0].Parameters) {
		t.Errorf("tools on the wire: %s", b)
	}
	if string(wire.ToolChoice) != string(it.ToolChoice) || wire.ParallelToolCalls == nil || *wire.ParallelToolCalls {
		t.Errorf("tool_choice %s, parallel_tool_calls %v", wire.ToolChoice, wire.ParallelToolCalls)
	}
	if !strings.Contains(string(wire.Messages[1]), `"tool_calls":[{"id":"call_1","type":"function","function":{"name":"check_disk","arguments":"{\"host\":\"a\"}"}}]`) ||
		!strings.Contains(string(wire.Messages[2]), `"tool_call_id":"call_1"`) {
		t.Errorf("messages on the wire: %s", b)
	}
	// Without tools, tool_choice is not sent (providers refuse it alone).
	b, _ = json.Marshal(provider.Request(it, "gpt-4o-mini"))
	if strings.Contains(string(b), "tool_choice") || strings.Contains(string(b), `"tools"`) {
		t.Errorf("a request without tools carries tool fields: %s", b)
	}
}

// Against the simulator: the first answer is the tool calls, with empty
// content accepted; the answer to the results proves they reached it.
func TestCompleteToolCallsAgainstSimulator(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 1})
	c := provider.NewClient(provider.Config{BaseURL: sim.URL()})
	prompt := `check both #tools:check_disk,clean_logs #args:check_disk:{"host":"web-1"}`
	it := userItem(prompt)
	got, err := c.Complete(t.Context(), it, "gpt-4o-mini", demoTools...)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if len(got.ToolCalls) != 2 || got.ToolCalls[0].Function.Name != "check_disk" || got.ToolCalls[0].Function.Arguments != `{"host":"web-1"}` ||
		got.ToolCalls[1].Function.Name != "clean_logs" || got.FinishReason != "tool_calls" || got.TokensOut == 0 {
		t.Fatalf("answer %+v, want two tool calls, finish tool_calls", got)
	}
	it.Messages = append(it.Messages, tasks.Message{Role: "assistant", ToolCalls: got.ToolCalls},
		tasks.Message{Role: "tool", ToolCallID: got.ToolCalls[0].ID, Content: "91%"},
		tasks.Message{Role: "tool", ToolCallID: got.ToolCalls[1].ID, Content: "freed 3 GB"})
	final, err := c.Complete(t.Context(), it, "gpt-4o-mini", demoTools...)
	if err != nil {
		t.Fatalf("Complete with the results: %v", err)
	}
	if want := simulator.ToolReply("91%", "freed 3 GB"); final.Content != want || len(final.ToolCalls) != 0 {
		t.Errorf("final answer %+v, want %q", final, want)
	}
}
