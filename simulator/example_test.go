package simulator_test

import (
	"context"
	"fmt"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/simulator"
)

func Example() {
	ctx := context.Background()
	sim, err := simulator.Start(ctx, simulator.Config{}, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer sim.Close()

	cfg := openai.DefaultConfig("")
	cfg.BaseURL = sim.URL()
	client := openai.NewClientWithConfig(cfg)
	resp, err := client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hello"}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Choices[0].Message.Content == simulator.ReplyPrefix+simulator.Key("hello"))
	fmt.Println(resp.Usage.PromptTokens, resp.Usage.CompletionTokens)

	_, err = client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hello #fail:503"}},
	})
	fmt.Println(err)
	// Output:
	// true
	// 8 10
	// error, status code: 503, status: 503 Service Unavailable, message: Service Unavailable.
}
