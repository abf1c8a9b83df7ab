package tokens

import (
	"strings"
	"sync"
	"testing"

	"github.com/llmfleet/llmfleet/tasks"
)

func TestEncodingFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model, want string
	}{
		{"gpt-4o", O200kBase},
		{"gpt-4o-mini", O200kBase},
		{"gpt-4o-2024-08-06", O200kBase},
		{"chatgpt-4o-latest", O200kBase},
		{"gpt-4.1", O200kBase},
		{"gpt-4.1-mini", O200kBase},
		{"gpt-4.5-preview", O200kBase},
		{"gpt-5", O200kBase},
		{"gpt-5-nano", O200kBase},
		{"o1", O200kBase},
		{"o3-mini", O200kBase},
		{"o4-mini", O200kBase},
		{"gpt-4", Cl100kBase},
		{"gpt-4-turbo", Cl100kBase},
		{"gpt-4-0613", Cl100kBase},
		{"GPT-4-32k", Cl100kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"gpt-35-turbo", Cl100kBase},
		{"text-embedding-3-small", Cl100kBase},
		{"text-embedding-ada-002", Cl100kBase},
		{"ft:gpt-3.5-turbo-0125:acme::abc123", Cl100kBase},
		{"ft:gpt-4o-mini-2024-07-18:acme::abc123", O200kBase},
		{"openai/gpt-4", Cl100kBase},
		{"llama3.1:8b", O200kBase}, // unknown: fallback
		{"mock", O200kBase},
		{"", O200kBase},
	}
	for _, tt := range tests {
		if got := EncodingFor(tt.model); got != tt.want {
			t.Errorf("EncodingFor(%q) = %q, want %q", tt.model, got, tt.want)
		}
		if got := ForModel(tt.model).Encoding(); got != tt.want {
			t.Errorf("ForModel(%q).Encoding() = %q, want %q", tt.model, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		encoding string
		text     string
		want     int
	}{
		{O200kBase, "", 0},
		{O200kBase, "hello world", 2},
		{O200kBase, "Hello, world!", 4},
		{O200kBase, "The quick brown fox jumps over the lazy dog.", 10},
		{O200kBase, "こんにちは世界", 2},
		{O200kBase, "mock:0123456789ab", 7},
		{Cl100kBase, "", 0},
		{Cl100kBase, "hello world", 2},
		{Cl100kBase, "Hello, world!", 4},
		{Cl100kBase, "The quick brown fox jumps over the lazy dog.", 10},
		{Cl100kBase, "こんにちは世界", 4},
	}
	for _, tt := range tests {
		if got := ForEncoding(tt.encoding).Text(tt.text); got != tt.want {
			t.Errorf("%s Text(%q) = %d, want %d", tt.encoding, tt.text, got, tt.want)
		}
	}
}

// cookbook is the example conversation of OpenAI's cookbook "How to count
// tokens with tiktoken", for which the API reported 129 prompt tokens on
// gpt-3.5-turbo and gpt-4, and 124 on gpt-4o and gpt-4o-mini.
var cookbook = []tasks.Message{
	{Role: "system", Content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
	{Role: "system", Name: "example_user", Content: "New synergies will help drive top-line growth."},
	{Role: "system", Name: "example_assistant", Content: "Things working well together will increase revenue."},
	{Role: "system", Name: "example_user", Content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
	{Role: "system", Name: "example_assistant", Content: "Let's talk later when we're less busy about how to do better."},
	{Role: "user", Content: "This late pivot means we don't have time to boil the ocean for the client deliverable."},
}

func TestMessages(t *testing.T) {
	t.Parallel()
	t.Run("cookbook counts match the API", func(t *testing.T) {
		t.Parallel()
		for model, want := range map[string]int{
			"gpt-3.5-turbo": 129,
			"gpt-4":         129,
			"gpt-4o":        124,
			"gpt-4o-mini":   124,
		} {
			if got := ForModel(model).Messages(cookbook); got != want {
				t.Errorf("%s: Messages(cookbook) = %d, want %d", model, got, want)
			}
		}
	})
	t.Run("overhead formula", func(t *testing.T) {
		t.Parallel()
		c := ForModel("gpt-4o-mini")
		tests := []struct {
			name string
			msgs []tasks.Message
			want int
		}{
			{"no messages: reply priming only", nil, 3},
			// 3 framing + "user" (1) + "hello world" (2) + 3 priming.
			{"one message", []tasks.Message{{Role: "user", Content: "hello world"}}, 3 + 1 + 2 + 3},
			// a name adds 1 + its tokens ("alice" is 1).
			{"named message", []tasks.Message{{Role: "user", Content: "hello world", Name: "alice"}}, 3 + 1 + 2 + 1 + 1 + 3},
			{"two messages", []tasks.Message{
				{Role: "system", Content: "hello world"},
				{Role: "user", Content: "Hello, world!"},
			}, (3 + 1 + 2) + (3 + 1 + 4) + 3},
			{"empty content", []tasks.Message{{Role: "user"}}, 3 + 1 + 3},
		}
		for _, tt := range tests {
			if got := c.Messages(tt.msgs); got != tt.want {
				t.Errorf("%s: Messages = %d, want %d", tt.name, got, tt.want)
			}
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model := "gpt-4o"
			if i%2 == 0 {
				model = "gpt-4"
			}
			if got := ForModel(model).Text("The quick brown fox jumps over the lazy dog."); got != 10 {
				t.Errorf("Text = %d, want 10", got)
			}
		}()
	}
	wg.Wait()
}

// AtMost never undercounts, whatever the script, for both encodings: the
// window check skips the tokenizer on its word.
func TestAtMostIsAnUpperBound(t *testing.T) {
	t.Parallel()
	texts := []string{"", "a", "hello world", "日本語のテキストです", "emoji 🎉🎉🎉 and ZWJ 👩‍👩‍👧", "   \n\t  ", strings.Repeat("x", 5000),
		strings.Repeat("¡ñé ", 300), "\x00\x01 control", "<|endoftext|> special text"}
	for _, enc := range []string{O200kBase, Cl100kBase} {
		c := ForEncoding(enc)
		for _, s := range texts {
			msgs := []tasks.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: s, Name: "n"}}
			if got, bound := c.Messages(msgs), AtMost(msgs); bound < got {
				t.Errorf("%s: AtMost(%q) = %d, below the count %d", enc, s, bound, got)
			}
		}
	}
	if got := AtMost([]tasks.Message{{Role: "user", Content: "abcd"}}); got != 3+3+4+4 {
		t.Errorf("AtMost = %d, want reply 3 + message 3 + role 4 + content 4 = 14", got)
	}
}
