package input_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/llmfleet/llmfleet/input"
)

func Example() {
	in := `{"id":"007","title":"Dune"}
{"id":"008"}

{"id":"007","title":"Dune"}
{"id":42,"title":"Solaris","metadata":{"shelf": 3}}
`
	r, err := input.NewReader(strings.NewReader(in), "books.jsonl", input.Options{
		Template: "Summarise {{.title}} in one line.",
		System:   "You are a librarian.",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("line %d: id %s: %q metadata=%s\n", rec.Line, rec.Item.ID, rec.Item.LastUserContent(), rec.Item.Metadata)
	}
	for _, rej := range r.Rejections() {
		fmt.Printf("line %d rejected: %s\n", rej.Line, rej.Error)
	}
	fmt.Printf("%+v\n", r.Stats())
	fmt.Println(r.Fields())
	// Output:
	// line 1: id 007: "Summarise Dune in one line." metadata=
	// line 5: id 42: "Summarise Solaris in one line." metadata={"shelf":3}
	// line 2 rejected: template: field "title" not in item (fields: id)
	// {Lines:4 Accepted:2 Rejected:1 DuplicatesCollapsed:1}
	// [id title metadata]
}
