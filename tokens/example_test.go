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
