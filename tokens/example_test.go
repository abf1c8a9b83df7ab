package tokens_test

import (
	"fmt"

	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

func Example() {
	c := tokens.ForModel("gpt-4o-mini")
	fmt.Println(c.Encoding())
	fmt.Println(c.Text("hello world"))
	fmt.Println(c.Messages([]tasks.Message{{Role: "user", Content: "hello world"}}))
	// Output:
	// o200k_base
	// 2
	// 9
}

func ExampleCounter_Fit() {
	c := tokens.ForModel("gpt-4o-mini")
	msgs := []tasks.Message{
		{Role: "system", Content: "Answer in one word."},
		{Role: "user", Content: "What colour is the sky?"},
		{Role: "assistant", Content: "Blue."},
		{Role: "user", Content: "And what colour is grass on a sunny day in the middle of a long summer?"},
	}
	res, err := c.Fit(msgs, 32)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range res.Messages {
		fmt.Printf("%s: %s\n", m.Role, m.Content)
	}
	fmt.Println(res.Truncated, res.Before, "->", res.After)
	// Output:
	// system: Answer in one word.
	// user: And what colour is grass on a sunny day in the middle [truncated]
	// true 49 -> 32
}

func ExampleCounter_Truncate() {
	c := tokens.ForModel("gpt-4o-mini")
	fmt.Println(c.Truncate("The quick brown fox jumps over the lazy dog.", 4))
	// Output:
	// The quick brown fox 6
}
