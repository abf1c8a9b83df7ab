package models_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/llmfleet/llmfleet/models"
)

func Example() {
	user, err := models.Load(strings.NewReader(`{"gpt-4o-mini": {"input_usd_per_mtok": 0.10}}`))
	if err != nil {
		log.Fatal(err)
	}
	table := models.Builtin().With(user)

	m, ok := table.Lookup("gpt-4o-mini-2024-07-18")
	fmt.Println(ok, m.ContextWindow, m.MaxOutput)
	fmt.Printf("$%.4f\n", m.CostUSD(10_000, 2_000))

	_, ok = table.Lookup("llama3.1:8b")
	fmt.Println(ok)
	// Output:
	// true 128000 16384
	// $0.0022
	// false
}
