// Package schema compiles and checks JSON Schemas: the parameters of agent
// tools, and the json_schema response formats whose answers are validated
// locally before they are kept.
//
// It wraps santhosh-tekuri/jsonschema (v6): the most complete and
// best-kept Go implementation of the current drafts (2020-12 by default
// here, earlier ones when a schema says so with $schema), with no
// dependencies and errors that name the failing keyword and location. A
// schema may not $ref anything outside itself, so compiling one on a
// worker reads no file and no network. Compiled schemas are cached by
// their text (Cache), since a job's items share theirs.
package schema

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// Schema is a compiled JSON Schema.
type Schema struct{ s *jsonschema.Schema }

// noLoader refuses every $ref to an outside document.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("schema references %s: only references inside the schema are allowed", u)
}

// Compile compiles a JSON Schema.
func Compile(raw []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	const loc = "mem://llmfleet/schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	return &Schema{s: s}, nil
}

// ValidationError lists why a document does not match a schema: one line
// per failing location, each naming the JSON pointer of the property and
// what is wrong ("at /sentiment: value must be one of ...").
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string { return strings.Join(e.Problems, "; ") }

// Validate checks a JSON document (text) against s. Its error is a
// *ValidationError when the document is JSON that does not match, another
// error when it is not JSON.
func (s *Schema) Validate(doc []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	return s.ValidateValue(inst)
}

// ValidateValue checks a decoded document (as jsonschema.UnmarshalJSON
// decodes it) against s.
func (s *Schema) ValidateValue(inst any) error {
	err := s.s.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return &ValidationError{Problems: problems(ve)}
	}
	return err
}

// problems flattens the leaves of a validation error: the causes that say
// what is wrong, each at its instance location.
func problems(ve *jsonschema.ValidationError) []string {
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			out = append(out, fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(out)
	return out
}

// Cache compiles each schema text once. Its zero value is ready; it is
// safe for concurrent use. It holds at most cacheSize schemas: past that it
// starts over (a worker serving many jobs with many schemas recompiles
// some, rather than growing without bound).
type Cache struct {
	mu sync.Mutex
	m  map[string]*Schema
}

const cacheSize = 1024

// Get returns the compiled schema of raw.
func (c *Cache) Get(raw []byte) (*Schema, error) {
	c.mu.Lock()
	s, ok := c.m[string(raw)]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := Compile(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheSize {
		c.m = map[string]*Schema{}
	}
	c.m[string(raw)] = s
	c.mu.Unlock()
	return s, nil
}
