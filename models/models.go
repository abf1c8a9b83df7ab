package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Model is what the fleet knows about one model. A zero field means unknown
// (see the package doc).
type Model struct {
	// ContextWindow is the most tokens a request may hold, prompt and
	// completion together.
	ContextWindow int `json:"context_window"`
	// MaxOutput is the most completion tokens the model writes per request.
	MaxOutput int `json:"max_output"`
	// InputUSDPerMTok and OutputUSDPerMTok are list prices in US dollars
	// per million prompt and completion tokens: estimates.
	InputUSDPerMTok  float64 `json:"input_usd_per_mtok"`
	OutputUSDPerMTok float64 `json:"output_usd_per_mtok"`
}

// CostUSD returns the estimated cost in US dollars of a request that used
// tokensIn prompt and tokensOut completion tokens.
func (m Model) CostUSD(tokensIn, tokensOut int) float64 {
	return (float64(tokensIn)*m.InputUSDPerMTok + float64(tokensOut)*m.OutputUSDPerMTok) / 1e6
}

// Table maps model names to what is known about them.
type Table map[string]Model

// Builtin returns the built-in table (see the package doc), a fresh copy on
// every call that the caller may modify.
func Builtin() Table {
	return Table{
		"gpt-4o":        {ContextWindow: 128000, MaxOutput: 16384, InputUSDPerMTok: 2.50, OutputUSDPerMTok: 10.00},
		"gpt-4o-mini":   {ContextWindow: 128000, MaxOutput: 16384, InputUSDPerMTok: 0.15, OutputUSDPerMTok: 0.60},
		"gpt-4.1":       {ContextWindow: 1047576, MaxOutput: 32768, InputUSDPerMTok: 2.00, OutputUSDPerMTok: 8.00},
		"gpt-4.1-mini":  {ContextWindow: 1047576, MaxOutput: 32768, InputUSDPerMTok: 0.40, OutputUSDPerMTok: 1.60},
		"gpt-4.1-nano":  {ContextWindow: 1047576, MaxOutput: 32768, InputUSDPerMTok: 0.10, OutputUSDPerMTok: 0.40},
		"gpt-4-turbo":   {ContextWindow: 128000, MaxOutput: 4096, InputUSDPerMTok: 10.00, OutputUSDPerMTok: 30.00},
		"gpt-4":         {ContextWindow: 8192, MaxOutput: 8192, InputUSDPerMTok: 30.00, OutputUSDPerMTok: 60.00},
		"gpt-3.5-turbo": {ContextWindow: 16385, MaxOutput: 4096, InputUSDPerMTok: 0.50, OutputUSDPerMTok: 1.50},
		"o1":            {ContextWindow: 200000, MaxOutput: 100000, InputUSDPerMTok: 15.00, OutputUSDPerMTok: 60.00},
		// o1-mini would otherwise match o1, whose window is larger and
		// whose prices are 14 times higher.
		"o1-mini":    {ContextWindow: 128000, MaxOutput: 65536, InputUSDPerMTok: 1.10, OutputUSDPerMTok: 4.40},
		"o3":         {ContextWindow: 200000, MaxOutput: 100000, InputUSDPerMTok: 2.00, OutputUSDPerMTok: 8.00},
		"o3-mini":    {ContextWindow: 200000, MaxOutput: 100000, InputUSDPerMTok: 1.10, OutputUSDPerMTok: 4.40},
		"o4-mini":    {ContextWindow: 200000, MaxOutput: 100000, InputUSDPerMTok: 1.10, OutputUSDPerMTok: 4.40},
		"gpt-5":      {ContextWindow: 400000, MaxOutput: 128000, InputUSDPerMTok: 1.25, OutputUSDPerMTok: 10.00},
		"gpt-5-mini": {ContextWindow: 400000, MaxOutput: 128000, InputUSDPerMTok: 0.25, OutputUSDPerMTok: 2.00},
		"gpt-5-nano": {ContextWindow: 400000, MaxOutput: 128000, InputUSDPerMTok: 0.05, OutputUSDPerMTok: 0.40},
		// Embedding models: the window is per input; prices are input only.
		"text-embedding-3-small": {ContextWindow: 8191, InputUSDPerMTok: 0.02},
		"text-embedding-3-large": {ContextWindow: 8191, InputUSDPerMTok: 0.13},
		"text-embedding-ada-002": {ContextWindow: 8191, InputUSDPerMTok: 0.10},
		"mock":                   {ContextWindow: 8192, MaxOutput: 4096},
	}
}

// Lookup returns the entry for model: its exact name, else the entry of its
// family (see the package doc). ok is false for a model the table does not
// know.
func (t Table) Lookup(model string) (Model, bool) {
	if m, ok := t[model]; ok {
		return m, true
	}
	name := normalize(model)
	if name == "" {
		return Model{}, false
	}
	if m, ok := t[name]; ok {
		return m, true
	}
	best, found := "", false
	for key := range t {
		k := strings.ToLower(key)
		if !strings.HasPrefix(name, k) || (len(name) > len(k) && name[len(k)] != '-') {
			continue
		}
		// Longest key wins; ties (keys equal but for case) break by
		// name so the answer does not depend on map order.
		if !found || len(key) > len(best) || (len(key) == len(best) && key < best) {
			best, found = key, true
		}
	}
	if !found {
		return Model{}, false
	}
	return t[best], true
}

// normalize returns the name of the base model: lower-cased, without a
// fine-tune wrapper ("ft:base:org:suffix:id") or a router prefix
// ("openai/").
func normalize(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if rest, ok := strings.CutPrefix(m, "ft:"); ok {
		m, _, _ = strings.Cut(rest, ":")
	}
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	return m
}

// With returns a merged copy of t and overrides: models only in overrides
// are added, and for a model in both every non-zero field of the override
// replaces the base value. Neither table is modified.
func (t Table) With(overrides Table) Table {
	out := make(Table, len(t)+len(overrides))
	for name, m := range t {
		out[name] = m
	}
	for name, o := range overrides {
		m := out[name]
		if o.ContextWindow != 0 {
			m.ContextWindow = o.ContextWindow
		}
		if o.MaxOutput != 0 {
			m.MaxOutput = o.MaxOutput
		}
		if o.InputUSDPerMTok != 0 {
			m.InputUSDPerMTok = o.InputUSDPerMTok
		}
		if o.OutputUSDPerMTok != 0 {
			m.OutputUSDPerMTok = o.OutputUSDPerMTok
		}
		out[name] = m
	}
	return out
}

// Load reads a user table: a JSON object whose keys are model names and
// whose values hold Model's fields, any of them optional. Unknown fields,
// negative numbers, empty or repeated model names and anything after the
// object are rejected, with an error that gives the line, the model and the
// field.
func Load(r io.Reader) (Table, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(err error) error {
		return fmt.Errorf("load models: %w", describe(data, err))
	}
	if tok, err := dec.Token(); err != nil {
		return nil, fail(err)
	} else if tok != json.Delim('{') {
		return nil, fail(fmt.Errorf("line %d: want an object of models, got %v", lineOf(data, dec.InputOffset()), tok))
	}
	t := Table{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		name := tok.(string) // object keys are strings
		line := lineOf(data, dec.InputOffset())
		if strings.TrimSpace(name) == "" {
			return nil, fail(fmt.Errorf("line %d: empty model name", line))
		}
		if _, dup := t[name]; dup {
			return nil, fail(fmt.Errorf("line %d: model %q: given twice", line, name))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fail(err)
		}
		m, err := decodeModel(raw)
		if err != nil {
			return nil, fail(fmt.Errorf("line %d: model %q: %w", line, name, err))
		}
		t[name] = m
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fail(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail(fmt.Errorf("line %d: data after the object", lineOf(data, dec.InputOffset())))
	}
	return t, nil
}

// decodeModel decodes one entry strictly and validates it.
func decodeModel(raw json.RawMessage) (Model, error) {
	var m Model
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return Model{}, fmt.Errorf("field %s: want %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case errors.As(err, &typeErr):
			return Model{}, fmt.Errorf("want an object of fields, got %s", typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json has no type for this error.
			return Model{}, fmt.Errorf("unknown field %s (known: context_window, max_output, input_usd_per_mtok, output_usd_per_mtok)",
				strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return Model{}, err
		}
	}
	for _, f := range []struct {
		name  string
		value float64
	}{
		{"context_window", float64(m.ContextWindow)},
		{"max_output", float64(m.MaxOutput)},
		{"input_usd_per_mtok", m.InputUSDPerMTok},
		{"output_usd_per_mtok", m.OutputUSDPerMTok},
	} {
		if f.value < 0 {
			return Model{}, fmt.Errorf("field %s: must not be negative, got %v", f.name, f.value)
		}
	}
	return m, nil
}

// describe adds the line and column to a JSON syntax error.
func describe(data []byte, err error) error {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		// A Decoder's offsets are relative to its buffer, not the input:
		// take the offset from a scan of the whole input instead.
		var whole *json.SyntaxError
		if errors.As(json.Unmarshal(data, new(any)), &whole) {
			syntaxErr = whole
		}
		// Offset counts the bytes read, the offending one included.
		at := max(syntaxErr.Offset-1, 0)
		line, col := position(data, at)
		return fmt.Errorf("line %d, column %d (byte offset %d): %w", line, col, at, syntaxErr)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		line, col := position(data, int64(len(data)))
		return fmt.Errorf("line %d, column %d: unexpected end of input", line, col)
	}
	return err
}

func lineOf(data []byte, offset int64) int {
	line, _ := position(data, offset)
	return line
}

// position returns the 1-based line and column of a byte offset.
func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}
