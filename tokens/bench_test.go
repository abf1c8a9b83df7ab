package tokens

import (
	"testing"

	"github.com/llmfleet/llmfleet/tasks"
)

// typicalChat is about 500 prompt tokens in 3 messages: a system message,
// an example answer and the user's request.
func typicalChat() []tasks.Message {
	return []tasks.Message{
		{Role: "system", Content: "You are a careful analyst. Answer in one paragraph, cite the figures you use, and say when the data does not support an answer."},
		{Role: "assistant", Content: prose(120)},
		{Role: "user", Content: "Summarize this report for a manager: " + prose(330)},
	}
}

// BenchmarkCountTypical measures the tokenizer's cost per item at a
// typical prompt size.
func BenchmarkCountTypical(b *testing.B) {
	c := ForModel("gpt-4o-mini")
	msgs := typicalChat()
	for b.Loop() {
		c.Messages(msgs)
	}
	b.ReportMetric(float64(c.Messages(msgs)), "tokens/item")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/item")
}

// BenchmarkCount100k measures counting a 100k-token prompt.
func BenchmarkCount100k(b *testing.B) {
	c := ForModel("gpt-4o-mini")
	msgs := []tasks.Message{{Role: "user", Content: prose(100_000)}}
	for b.Loop() {
		c.Messages(msgs)
	}
	b.ReportMetric(float64(c.Messages(msgs)), "tokens/item")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/item")
}

// BenchmarkFit100kTo8k measures trimming a 100k-token prompt to 8k tokens.
func BenchmarkFit100kTo8k(b *testing.B) {
	c := ForModel("gpt-4o-mini")
	msgs := []tasks.Message{
		{Role: "system", Content: "You are a careful analyst."},
		{Role: "user", Content: prose(100_000)},
	}
	for b.Loop() {
		if _, err := c.Fit(msgs, 8000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/item")
}
