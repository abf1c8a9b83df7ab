package input

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/llmfleet/llmfleet/tasks"
)

// OpenAI Batch API input lines: {"custom_id", "method": "POST", "url",
// "body"}, read as they are. custom_id becomes the item's id and body the
// request: a chat completion or an embedding, by url.
var batchURLs = map[string]string{
	"/v1/chat/completions": "",
	"/v1/embeddings":       tasks.EndpointEmbeddings,
}

// chatBodyKeys are the request fields of a chat completion body an item
// can carry; any other is refused by name rather than dropped.
var chatBodyKeys = []string{"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
	"seed", "response_format", "tool_choice", "parallel_tool_calls", "metadata", "user", "store", "n", "stream"}

// embeddingBodyKeys are those of an embedding body.
var embeddingBodyKeys = []string{"model", "input", "dimensions", "encoding_format", "user"}

// parseBatchLine turns the line in r.fs (already scanned) into an item.
func (r *Reader) parseBatchLine() (tasks.Item, string) {
	var id, url string
	var body []byte
	for i, name := range r.fs.names {
		v := r.fs.vals[i]
		switch name {
		case "custom_id":
			s, ok := v.str()
			if !ok || strings.TrimSpace(s) == "" {
				return tasks.Item{}, "custom_id must be a non-empty string, got " + v.show()
			}
			id = s
		case "method":
			if s, _ := v.str(); s != "POST" {
				return tasks.Item{}, "method must be POST, got " + v.show()
			}
		case "url":
			s, _ := v.str()
			if _, ok := batchURLs[s]; !ok {
				return tasks.Item{}, fmt.Sprintf("url must be /v1/chat/completions or /v1/embeddings, got %s", v.show())
			}
			url = s
		case "body":
			if kindOf(v.raw) != "object" {
				return tasks.Item{}, "body must be the request object, got " + v.show()
			}
			body = v.raw
		default:
			return tasks.Item{}, fmt.Sprintf("an OpenAI batch line has custom_id, method, url and body; %q is not one of them", name)
		}
	}
	switch {
	case url == "":
		return tasks.Item{}, "url is missing (/v1/chat/completions or /v1/embeddings)"
	case body == nil:
		return tasks.Item{}, "body is missing: an OpenAI batch line needs the request in body"
	}
	endpoint := batchURLs[url]
	allowed := chatBodyKeys
	if endpoint == tasks.EndpointEmbeddings {
		allowed = embeddingBodyKeys
	}
	// The body's members become the item's fields, with custom_id as id.
	var fs fieldSet
	fs.add("id", value{raw: mustQuote(id)})
	var bad, dup, badValue string
	seen := map[string]bool{}
	scanObject(bytes.TrimSpace(body), func(key string, val []byte) {
		switch {
		case seen[key]:
			dup = key
		case !slices.Contains(allowed, key):
			if bad == "" {
				bad = key
			}
		}
		seen[key] = true
		if badValue == "" {
			switch {
			case key == "encoding_format" && string(val) != `"float"` && string(val) != "null":
				badValue = fmt.Sprintf(`body.encoding_format must be "float", got %s`, val)
			case key == "n" && string(val) != "1" && string(val) != "null":
				badValue = fmt.Sprintf("body.n must be 1 (one answer per item), got %s", val)
			case key == "stream" && string(val) != "false" && string(val) != "null":
				badValue = fmt.Sprintf("body.stream must be false (answers are kept whole), got %s", val)
			}
		}
		switch key {
		case "max_completion_tokens":
			key = "max_tokens"
		case "user", "store", "encoding_format", "n", "stream":
			return // no effect on the answer llmfleet keeps
		}
		fs.add(key, value{raw: val})
	})
	switch {
	case dup != "":
		return tasks.Item{}, fmt.Sprintf("body has key %q twice", dup)
	case bad != "":
		return tasks.Item{}, fmt.Sprintf("body.%s is not supported for %s (supported: %s)", bad, url, strings.Join(allowed, ", "))
	case badValue != "":
		return tasks.Item{}, badValue
	case seen["max_tokens"] && seen["max_completion_tokens"]:
		return tasks.Item{}, "body has both max_tokens and max_completion_tokens"
	}
	saved, savedTmpl := r.endpoint, r.tmpl
	r.endpoint, r.tmpl, r.batchLine = endpoint, nil, true // a batch body is the request: no template, no --system
	defer func() { r.endpoint, r.tmpl, r.batchLine = saved, savedTmpl, false }()
	it, msg := r.build(&fs, nil)
	if msg != "" {
		return it, "body: " + msg
	}
	it.Batch = true
	// Reader.Fields (the failed-items CSV's columns) names what Item.Fields
	// holds: the body's fields, not custom_id, method, url and body.
	r.fs.reset()
	for i, name := range fs.names {
		r.fs.add(name, fs.vals[i])
	}
	return it, ""
}

func mustQuote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
