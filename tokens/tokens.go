package tokens

import (
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"

	"github.com/llmfleet/llmfleet/tasks"
)

// Encoding names, as OpenAI spells them.
const (
	O200kBase  = "o200k_base"
	Cl100kBase = "cl100k_base"
)

// Message framing of OpenAI's chat format (see the package doc).
const (
	perMessage = 3 // <|start|>{role}\n ... <|end|>
	perName    = 1
	perReply   = 3 // <|start|>assistant<|message|>
)

// The codecs are loaded lazily, once per process, and shared: loading is
// expensive and a loaded codec is safe for concurrent use.
var (
	o200k  = sync.OnceValue(func() tokenizer.Codec { return mustGet(tokenizer.O200kBase) })
	cl100k = sync.OnceValue(func() tokenizer.Codec { return mustGet(tokenizer.Cl100kBase) })
)

func mustGet(enc tokenizer.Encoding) tokenizer.Codec {
	c, err := tokenizer.Get(enc)
	if err != nil {
		// Both encodings are compiled into the library; this cannot fail
		// unless the dependency drops one, which tests would catch.
		panic("tokens: load " + string(enc) + ": " + err.Error())
	}
	return c
}

// Counter counts tokens with one encoding. The zero value is not usable; get
// one from ForModel or ForEncoding. A Counter is cheap to copy and safe for
// concurrent use.
type Counter struct {
	codec tokenizer.Codec
}

// ForModel returns the counter for a model name, falling back to o200k_base
// for models it does not know (see the package doc).
func ForModel(model string) Counter {
	return ForEncoding(EncodingFor(model))
}

// ForEncoding returns the counter for an encoding name; names other than
// Cl100kBase get o200k_base.
func ForEncoding(encoding string) Counter {
	if encoding == Cl100kBase {
		return Counter{codec: cl100k()}
	}
	return Counter{codec: o200k()}
}

// EncodingFor returns the name of the encoding ForModel uses for model.
func EncodingFor(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	m = strings.TrimPrefix(m, "ft:")
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	switch {
	case m == "gpt-4", strings.HasPrefix(m, "gpt-4-"),
		strings.HasPrefix(m, "gpt-3.5"), strings.HasPrefix(m, "gpt-35"),
		strings.HasPrefix(m, "text-embedding-3"), strings.HasPrefix(m, "text-embedding-ada-002"):
		return Cl100kBase
	default:
		return O200kBase
	}
}

// Encoding returns the name of the counter's encoding.
func (c Counter) Encoding() string {
	return c.codec.GetName()
}

// Text returns the number of tokens in s.
func (c Counter) Text(s string) int {
	if s == "" {
		return 0
	}
	n, err := c.codec.Count(s)
	if err != nil {
		// Count fails only on a regexp match timeout or, in strict mode,
		// invalid UTF-8; the shared codecs use neither. Estimate rather
		// than report zero tokens.
		return (len(s) + 3) / 4
	}
	return n
}

// Messages returns the prompt tokens of a chat request with these messages,
// counted like OpenAI counts them: 3 per message, plus the tokens of its
// role, content and name, plus 1 when a name is set, plus 3 for the reply.
func (c Counter) Messages(msgs []tasks.Message) int {
	n := perReply
	for _, m := range msgs {
		n += c.message(m)
	}
	return n
}

// message returns the tokens one message adds to a chat request.
func (c Counter) message(m tasks.Message) int {
	return c.overhead(m) + c.Text(m.Content)
}

// overhead returns the tokens a message adds besides its content: its
// role, name, tool calls and the id of the call it answers.
func (c Counter) overhead(m tasks.Message) int {
	n := perMessage + c.Text(m.Role)
	if m.Name != "" {
		n += perName + c.Text(m.Name)
	}
	if m.ToolCallID != "" {
		n += c.Text(m.ToolCallID)
	}
	return n + c.ToolCalls(m.ToolCalls)
}

// ToolCalls returns the tokens of tool calls, counted as their ids, names
// and arguments (OpenAI does not publish its exact rule; this is close and
// never below it by much).
func (c Counter) ToolCalls(calls []tasks.ToolCall) int {
	n := 0
	for _, tc := range calls {
		n += perMessage + c.Text(tc.ID) + c.Text(tc.Function.Name) + c.Text(tc.Function.Arguments)
	}
	return n
}

// AtMost returns an upper bound of Messages without tokenizing: every token
// stands for at least one byte, so role, content and name cannot count more
// tokens than they have bytes. A prompt whose bound is within a limit needs
// no count for that limit.
func AtMost(msgs []tasks.Message) int {
	n := perReply
	for _, m := range msgs {
		n += perMessage + len(m.Role) + len(m.Content)
		if m.Name != "" {
			n += perName + len(m.Name)
		}
		n += len(m.ToolCallID)
		for _, tc := range m.ToolCalls {
			n += perMessage + len(tc.ID) + len(tc.Function.Name) + len(tc.Function.Arguments)
		}
	}
	return n
}
