package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
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

// ResponseFormat asks the provider for a format. "json_object" makes
// unparseable output an invalid_output failure; "json_schema" also checks
// the answer against the schema.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is OpenAI's json_schema response format: a named schema,
// passed to the provider as given.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict,omitempty"`
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
	// Endpoint is EndpointEmbeddings for an embedding item (Input holds
	// its inputs), empty for a chat completion.
	Endpoint   string   `json:"endpoint,omitempty"`
	Input      []string `json:"input,omitempty"`
	Dimensions int      `json:"dimensions,omitempty"`
	// Batch says the item came from an OpenAI Batch API input line: the
	// provider's response body is kept for export --format openai-batch.
	Batch bool `json:"batch,omitempty"`
	// Metadata is passed through to results untouched (compact JSON).
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Fields are the item's original input fields (CSV columns or JSON keys,
	// non-string JSON values as their JSON text), kept for the failed-items
	// CSV so a user can fix and resubmit what failed.
	Fields map[string]string `json:"fields,omitempty"`
}

// EndpointEmbeddings marks an embedding item.
const EndpointEmbeddings = "embeddings"

// IsEmbedding reports an embedding item.
func (it *Item) IsEmbedding() bool { return it.Endpoint == EndpointEmbeddings }

// WantsJSON reports whether the item asked for JSON (an object, or one
// that matches a schema).
func (it *Item) WantsJSON() bool {
	return it.ResponseFormat != nil && (it.ResponseFormat.Type == "json_object" || it.ResponseFormat.Type == "json_schema")
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

// ReaskPrefix begins the user message with which a worker re-asks for an
// answer that is not the JSON asked for (showing the model its answer and
// what is wrong with it). Such a turn is not part of the item:
// LastUserContent skips it, so the simulator keys a re-asked call like the
// first one.
const ReaskPrefix = "Your previous answer is not the JSON that was asked for: "

// LastUserContent returns the content of the last user message, the part a
// provider answers and the simulator keys its reply on; re-ask turns
// (ReaskPrefix) are skipped.
func (it *Item) LastUserContent() string {
	for i := len(it.Messages) - 1; i >= 0; i-- {
		if m := it.Messages[i]; m.Role == "user" && !strings.HasPrefix(m.Content, ReaskPrefix) {
			return m.Content
		}
	}
	return ""
}
