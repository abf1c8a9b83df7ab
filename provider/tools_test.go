package provider_test

import (
	"encoding/json"
	"errors"
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

// Embed against the simulator: one vector per input, in order, equal to
// the simulator's, with usage.
func TestEmbedAgainstSimulator(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 1})
	c := provider.NewClient(provider.Config{BaseURL: sim.URL()})
	inputs := []string{"alpha", "beta", "gamma"}
	got, err := c.Embed(t.Context(), "text-embedding-3-small", inputs, 5)
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if len(got.Vectors) != 3 || got.TokensIn == 0 || got.Model != "text-embedding-3-small" {
		t.Fatalf("answer %+v", got)
	}
	for i, in := range inputs {
		want := simulator.Embedding(in, 5)
		if len(got.Vectors[i]) != 5 {
			t.Fatalf("vector %d has %d dimensions, want 5", i, len(got.Vectors[i]))
		}
		for k := range want {
			if got.Vectors[i][k] != want[k] {
				t.Errorf("vector %d = %v, want %v", i, got.Vectors[i], want)
				break
			}
		}
	}
	// A refused input is a classified 400 naming it.
	_, err = c.Embed(t.Context(), "text-embedding-3-small", []string{"ok", "bad #fail:400"}, 0)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.BadRequest || !strings.Contains(pe.Message, "input[1]") {
		t.Errorf("bad input: %v, want bad_request naming input[1]", err)
	}
}

// A json_schema answer is checked against the schema: the simulator's
// conforming answer passes, its schemamiss fault is an invalid_output to
// re-ask, naming what is wrong.
func TestCompleteChecksTheSchema(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 1})
	c := provider.NewClient(provider.Config{BaseURL: sim.URL()})
	strict := true
	format := &tasks.ResponseFormat{Type: "json_schema", JSONSchema: &tasks.JSONSchema{Name: "review", Strict: &strict,
		Schema: json.RawMessage(`{"type":"object","required":["sentiment"],"additionalProperties":false,"properties":{"sentiment":{"enum":["positive","negative"]}}}`)}}
	it := userItem("fine")
	it.ResponseFormat = format
	got, err := c.Complete(t.Context(), it, "gpt-4o-mini")
	if err != nil || got.Content != `{"sentiment":"positive"}` {
		t.Fatalf("conforming answer: %+v, %v", got, err)
	}
	it = userItem("broken #fail:schemamiss")
	it.ResponseFormat = format
	_, err = c.Complete(t.Context(), it, "gpt-4o-mini")
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.InvalidOutput || !pe.Reask || !strings.Contains(pe.Message, "sentiment") {
		t.Errorf("schema miss: %v, want a re-askable invalid_output naming sentiment", err)
	}
	// The request carries the format as given.
	b, _ := json.Marshal(provider.Request(it, "gpt-4o-mini"))
	if !strings.Contains(string(b), `"json_schema":{"name":"review"`) || !strings.Contains(string(b), `"strict":true`) {
		t.Errorf("request %s does not carry the json_schema format", b)
	}
}
