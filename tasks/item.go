package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Message is one chat message of an item. An assistant message may carry
// tool calls (its content then often empty); a "tool" message answers one
// of them by ToolCallID.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolCall is one call to a tool asked for by the model, in OpenAI's shape.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the tool and carries its arguments as the JSON text
// the model wrote (not necessarily valid).
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ResponseFormat asks the provider for a format; Type "json_object" makes
// unparseable output an invalid_output failure.
type ResponseFormat struct {
	Type string `json:"type"`
}

// Item is one unit of batch work as the producer accepted it: the final
// messages (template and system message already applied) and the request
// options. It is stored in the job's checkpoint and read by workers.
type Item struct {
	ID             string          `json:"id"`
	Messages       []Message       `json:"messages"`
	Model          string          `json:"model,omitempty"`
	MaxTokens      int             `json:"max_tokens,omitempty"`
	Temperature    *float32        `json:"temperature,omitempty"`
	TopP           *float32        `json:"top_p,omitempty"`
	Stop           []string        `json:"stop,omitempty"`
	Seed           *int            `json:"seed,omitempty"`
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
	// Tools narrows the job's tools for this item, by name; empty means all
	// of the job's tools.
	Tools []string `json:"tools,omitempty"`
	// ToolChoice is OpenAI's tool_choice ("none", "auto", "required" or a
	// named function), passed through as given.
	ToolChoice json.RawMessage `json:"tool_choice,omitempty"`
	// ParallelToolCalls is OpenAI's parallel_tool_calls, when set.
	ParallelToolCalls *bool `json:"parallel_tool_calls,omitempty"`
	// Metadata is passed through to results untouched (compact JSON).
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Fields are the item's original input fields (CSV columns or JSON keys,
	// non-string JSON values as their JSON text), kept for the failed-items
	// CSV so a user can fix and resubmit what failed.
	Fields map[string]string `json:"fields,omitempty"`
}

// WantsJSON reports whether the item asked for a JSON object.
func (it *Item) WantsJSON() bool {
	return it.ResponseFormat != nil && it.ResponseFormat.Type == "json_object"
}

// Canonical returns the item's canonical encoding: the bytes the checkpoint
// stores and compares to tell "same item again" from "same id, different
// content". encoding/json writes struct fields in order and map keys sorted,
// so equal items always encode equally.
func (it *Item) Canonical() []byte {
	b, err := json.Marshal(it)
	if err != nil {
		// Item holds only strings, numbers and compact raw JSON validated
		// by the parser; failing to encode it is a programming error.
		panic("tasks: encode item: " + err.Error())
	}
	return b
}

// DerivedID returns the stable id of an item that has none: a hash of its
// content (with an empty id), identical across runs and machines.
func (it *Item) DerivedID() string {
	c := *it
	c.ID = ""
	sum := sha256.Sum256(c.Canonical())
	return "h" + hex.EncodeToString(sum[:8])
}

// LastUserContent returns the content of the last user message, the part a
// provider answers and the simulator keys its reply on.
func (it *Item) LastUserContent() string {
	for i := len(it.Messages) - 1; i >= 0; i-- {
		if it.Messages[i].Role == "user" {
			return it.Messages[i].Content
		}
	}
	return ""
}
