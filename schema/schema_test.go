package schema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/schema"
)

const review = `{"type": "object", "required": ["sentiment", "score"], "additionalProperties": false,
  "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}, "score": {"type": "integer", "minimum": 1, "maximum": 5},
    "tags": {"type": "array", "items": {"type": "string"}}}}`

func TestValidateNamesTheProperty(t *testing.T) {
	s, err := schema.Compile([]byte(review))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		doc  string
		want []string // each must appear in the error; none means valid
	}{
		{`{"sentiment": "positive", "score": 4}`, nil},
		{`{"sentiment": "positive", "score": 4, "tags": ["a"]}`, nil},
		{`{"score": 4}`, []string{"sentiment"}},
		{`{"sentiment": "angry", "score": 4}`, []string{"at /sentiment", "positive"}},
		{`{"sentiment": "positive", "score": 9}`, []string{"at /score", "5"}},
		{`{"sentiment": "positive", "score": 4, "tags": [1]}`, []string{"at /tags/0", "string"}},
		{`{"sentiment": "positive", "score": 4, "extra": 1}`, []string{"extra"}},
		{`{}`, []string{"sentiment", "score"}},
	}
	for _, tc := range cases {
		err := s.Validate([]byte(tc.doc))
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want valid", tc.doc, err)
			}
			continue
		}
		var ve *schema.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a ValidationError", tc.doc, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %q", tc.doc, err, w)
			}
		}
	}
	if err := s.Validate([]byte(`{"sentiment": `)); err == nil || errors.As(err, new(*schema.ValidationError)) {
		t.Errorf("truncated JSON: %v, want a not-JSON error", err)
	}
}

func TestCompileRefusesOutsideReferences(t *testing.T) {
	if _, err := schema.Compile([]byte(`{"$ref": "https://example.com/s.json"}`)); err == nil || !strings.Contains(err.Error(), "only references inside") {
		t.Errorf("outside $ref: %v", err)
	}
	if _, err := schema.Compile([]byte(`{"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}`)); err != nil {
		t.Errorf("inside $ref: %v", err)
	}
	if _, err := schema.Compile([]byte(`{"type": 5}`)); err == nil {
		t.Error("an invalid schema compiled")
	}
}

func TestCacheCompilesOnce(t *testing.T) {
	var c schema.Cache
	a, err := c.Get([]byte(review))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Get([]byte(review))
	if a != b {
		t.Error("the same schema text compiled twice")
	}
}
