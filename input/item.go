package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/schema"
	"github.com/llmfleet/llmfleet/tasks"
)

// value is one input field: a raw JSON value (JSONL) or a cell (CSV).
type value struct {
	raw   []byte
	cell  string
	isCSV bool
}

// absent reports a value that means "not given": JSON null or an empty or
// whitespace-only CSV cell.
func (v value) absent() bool {
	if v.isCSV {
		return strings.TrimSpace(v.cell) == ""
	}
	return kindOf(v.raw) == "null"
}

// text is the value as Item.Fields keeps it: a cell or JSON string
// verbatim, other JSON compact, null as "".
func (v value) text() string {
	if v.isCSV {
		return v.cell
	}
	switch kindOf(v.raw) {
	case "string":
		return unquote(v.raw)
	case "null":
		return ""
	case "object", "array":
		var b bytes.Buffer
		_ = json.Compact(&b, v.raw) // valid JSON
		return b.String()
	default:
		return string(v.raw)
	}
}

// show is the value as error messages quote it, shortened.
func (v value) show() string {
	s := string(v.raw)
	if v.isCSV {
		s = strconv.Quote(v.cell)
	} else if kindOf(v.raw) == "object" || kindOf(v.raw) == "array" {
		s = v.text()
	}
	const max = 60
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// str returns a string value: a cell, or a JSON string.
func (v value) str() (string, bool) {
	if v.isCSV {
		return v.cell, true
	}
	if kindOf(v.raw) != "string" {
		return "", false
	}
	return unquote(v.raw), true
}

// number returns the text of a numeric value: a trimmed cell or a JSON
// number.
func (v value) number() (string, bool) {
	if v.isCSV {
		return strings.TrimSpace(v.cell), true
	}
	if kindOf(v.raw) != "number" {
		return "", false
	}
	return string(v.raw), true
}

// fieldSet is an item's input fields in input order.
type fieldSet struct {
	names []string
	vals  []value
}

func (fs *fieldSet) reset() {
	fs.names = fs.names[:0]
	fs.vals = fs.vals[:0]
}

func (fs *fieldSet) add(name string, v value) {
	fs.names = append(fs.names, name)
	fs.vals = append(fs.vals, v)
}

// get returns the named field unless it is missing or absent.
func (fs *fieldSet) get(name string) (value, bool) {
	for i, n := range fs.names {
		if n == name {
			return fs.vals[i], !fs.vals[i].absent()
		}
	}
	return value{}, false
}

func (fs *fieldSet) has(name string) bool { return slices.Contains(fs.names, name) }

// build turns an item's fields into an item, or returns everything wrong
// with them. data returns the template's input; it is called only when
// there is a template. The id is left empty when the input has none.
func (r *Reader) build(fs *fieldSet, data func() (map[string]any, error)) (tasks.Item, string) {
	var (
		it   tasks.Item
		errs []string
	)
	fail := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if v, ok := fs.get("id"); ok {
		it.ID, ok = parseID(v)
		if !ok {
			errs = append(errs, fmt.Sprintf("id must be a string or a number, got %s", kindOf(v.raw)))
		}
	}

	prompt, hasPrompt := fs.get("prompt")
	if s, ok := prompt.str(); ok && strings.TrimSpace(s) == "" {
		hasPrompt = false
	}
	msgs, hasMsgs := fs.get("messages")
	input, hasInput := fs.get("input")
	embedding := r.endpoint == tasks.EndpointEmbeddings
	switch {
	case embedding && (hasPrompt || hasMsgs):
		errs = append(errs, `an embedding item takes "input", not "prompt" or "messages"`)
	case embedding && r.tmpl != nil:
		s, err := r.render(fs, data)
		if err != nil {
			fail(err)
		} else {
			it.Input = []string{s}
		}
	case embedding && hasInput:
		var err error
		it.Input, err = parseInput(input)
		fail(err)
	case embedding:
		errs = append(errs, `missing input: an embedding item needs "input" (a string or an array of strings)`)
	case hasInput && !hasPrompt && !hasMsgs && r.tmpl == nil:
		// With a template, "input" is just a field it may read.
		errs = append(errs, `"input" is for embedding items (run --endpoint embeddings, or OpenAI batch lines for /v1/embeddings); a chat item needs "prompt" or "messages"`)
	case r.tmpl != nil && hasMsgs:
		errs = append(errs, `an item with "messages" cannot use --template`)
	case r.tmpl != nil:
		s, err := r.render(fs, data)
		if err != nil {
			fail(err)
		} else {
			it.Messages = []tasks.Message{{Role: "user", Content: s}}
		}
	case hasPrompt && hasMsgs:
		errs = append(errs, `an item cannot have both "prompt" and "messages"`)
	case hasPrompt:
		s, ok := prompt.str()
		if !ok {
			errs = append(errs, "prompt must be a string, got "+prompt.show())
		}
		it.Messages = []tasks.Message{{Role: "user", Content: s}}
	case hasMsgs:
		var err error
		it.Messages, err = parseMessages(msgs, len(r.opts.Tools) > 0)
		fail(err)
	default:
		errs = append(errs, `missing prompt: an item needs "prompt" or "messages"`)
	}
	if embedding {
		it.Endpoint = tasks.EndpointEmbeddings
		if v, ok := fs.get("dimensions"); ok {
			n, ok := parseInteger(v)
			if !ok || n < 1 || n > 1<<16 {
				errs = append(errs, "dimensions must be a positive integer, got "+v.show())
			}
			it.Dimensions = int(n)
		}
		for _, k := range []string{"max_tokens", "temperature", "top_p", "stop", "seed", "response_format", "tools", "tool_choice", "parallel_tool_calls"} {
			if _, ok := fs.get(k); ok {
				errs = append(errs, fmt.Sprintf("%s is for chat items, not embeddings", k))
			}
		}
	}
	if r.opts.System != "" && !embedding && !r.batchLine && (len(it.Messages) == 0 || it.Messages[0].Role != "system") {
		it.Messages = append([]tasks.Message{{Role: "system", Content: r.opts.System}}, it.Messages...)
	}

	if v, ok := fs.get("model"); ok {
		s, ok := v.str()
		if !ok {
			errs = append(errs, "model must be a string, got "+v.show())
		}
		it.Model = strings.TrimSpace(s)
	}
	if v, ok := fs.get("max_tokens"); ok {
		n, ok := parseInteger(v)
		if !ok || n <= 0 || n > math.MaxInt32 {
			errs = append(errs, "max_tokens must be a positive integer, got "+v.show())
		}
		it.MaxTokens = int(n)
	}
	if v, ok := fs.get("temperature"); ok {
		var err error
		it.Temperature, err = parseRange("temperature", v, 2)
		fail(err)
	}
	if v, ok := fs.get("top_p"); ok {
		var err error
		it.TopP, err = parseRange("top_p", v, 1)
		fail(err)
	}
	if v, ok := fs.get("stop"); ok {
		var err error
		it.Stop, err = parseStop(v)
		fail(err)
	}
	if v, ok := fs.get("seed"); ok {
		n, ok := parseInteger(v)
		if !ok {
			errs = append(errs, "seed must be an integer, got "+v.show())
		}
		seed := int(n)
		it.Seed = &seed
	}
	if v, ok := fs.get("response_format"); ok {
		var err error
		it.ResponseFormat, err = parseResponseFormat(v)
		fail(err)
	}
	if r.opts.JSONOutput && !embedding && (it.ResponseFormat == nil || it.ResponseFormat.JSONSchema == nil) {
		// An item's own schema asks for JSON already, and more.
		it.ResponseFormat = &tasks.ResponseFormat{Type: "json_object"}
	}
	if r.opts.Schema != nil && !embedding {
		it.ResponseFormat = &tasks.ResponseFormat{Type: "json_schema", JSONSchema: r.opts.Schema}
	}
	toolsOK := true // the item's tools, if any, parsed: tool_choice is checked against them
	if v, ok := fs.get("tools"); ok {
		var err error
		it.Tools, err = r.parseTools(v)
		fail(err)
		toolsOK = err == nil
	}
	if v, ok := fs.get("tool_choice"); ok {
		var err error
		it.ToolChoice, err = r.parseToolChoice(v, it.Tools, toolsOK)
		fail(err)
	}
	if v, ok := fs.get("parallel_tool_calls"); ok {
		var err error
		it.ParallelToolCalls, err = r.parseParallelToolCalls(v)
		fail(err)
	}
	if v, ok := fs.get("metadata"); ok {
		it.Metadata = parseMetadata(v)
	}
	if len(errs) > 0 {
		return tasks.Item{}, strings.Join(errs, "; ")
	}

	it.Fields = make(map[string]string, len(fs.names))
	for i, name := range fs.names {
		it.Fields[name] = fs.vals[i].text()
	}
	return it, ""
}

// parseID returns the id verbatim: a cell, a JSON string, or a JSON
// number's literal text. A blank id counts as none.
func parseID(v value) (string, bool) {
	var id string
	switch {
	case v.isCSV:
		id = v.cell
	case kindOf(v.raw) == "string":
		id = unquote(v.raw)
	case kindOf(v.raw) == "number":
		id = string(v.raw)
	default:
		return "", false
	}
	if strings.TrimSpace(id) == "" {
		return "", true
	}
	return id, true
}

// parseInteger parses a whole number; JSON's 1e3 and 5.0 are whole numbers.
func parseInteger(v value) (int64, bool) {
	s, ok := v.number()
	if !ok {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// parseRange parses a number from 0 to hi.
func parseRange(field string, v value, hi float64) (*float32, error) {
	s, ok := v.number()
	f, err := strconv.ParseFloat(s, 64)
	if !ok || err != nil || !(f >= 0 && f <= hi) {
		return nil, fmt.Errorf("%s must be a number from 0 to %g, got %s", field, hi, v.show())
	}
	f32 := float32(f)
	return &f32, nil
}

// asJSON returns the JSON text of a field that takes JSON: the raw value,
// or a CSV cell that is JSON text starting with one of open. ok is false
// for a CSV cell that is not such JSON, which the caller reads as text.
func asJSON(v value, open byte) (raw []byte, ok bool) {
	if !v.isCSV {
		return v.raw, true
	}
	t := []byte(strings.TrimSpace(v.cell))
	if len(t) > 0 && t[0] == open && json.Valid(t) {
		return t, true
	}
	return nil, false
}

var roles = []string{"system", "user", "assistant", "tool", "developer"}

// parseMessages parses OpenAI chat messages with string content. Tool
// calls and tool replies are accepted only when the job has tools, and
// must follow OpenAI's order (see toolOrder).
func parseMessages(v value, jobHasTools bool) ([]tasks.Message, error) {
	raw := v.raw
	if v.isCSV {
		raw = []byte(strings.TrimSpace(v.cell))
		if err := json.Unmarshal(raw, new(json.RawMessage)); err != nil {
			return nil, fmt.Errorf("messages must be a JSON array: malformed JSON: %v", err)
		}
	}
	if kindOf(raw) != "array" {
		return nil, fmt.Errorf("messages must be an array of {role, content} objects, got %s", kindOf(raw))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("messages: %v", err)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("messages is empty")
	}
	out := make([]tasks.Message, 0, len(elems))
	var order toolOrder
	for i, e := range elems {
		msg, err := parseMessage(i, e, jobHasTools)
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
		if err := order.next(out); err != nil {
			return nil, err
		}
	}
	if err := order.end(out); err != nil {
		return nil, err
	}
	return out, nil
}

// messageKeys are the keys a message may have.
var messageKeys = []string{"role", "content", "name", "tool_calls", "tool_call_id"}

// parseMessage parses messages[i] on its own; toolOrder checks it against
// the messages before it.
func parseMessage(i int, e json.RawMessage, jobHasTools bool) (tasks.Message, error) {
	var msg tasks.Message
	if kindOf(e) != "object" {
		return msg, fmt.Errorf("messages[%d] must be an object, got %s", i, kindOf(e))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e, &m); err != nil {
		return msg, fmt.Errorf("messages[%d]: %v", i, err)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(messageKeys, k) {
			return msg, fmt.Errorf("messages[%d] has unsupported key %q (only role, content, name, tool_calls and tool_call_id)", i, k)
		}
	}
	role, ok := m["role"]
	if !ok || kindOf(role) == "null" {
		return msg, fmt.Errorf("messages[%d].role is missing", i)
	}
	msg.Role, _ = value{raw: role}.str()
	if !slices.Contains(roles, msg.Role) {
		return msg, fmt.Errorf("messages[%d].role must be one of %s, got %s", i, strings.Join(roles, ", "), value{raw: role}.show())
	}
	calls, hasCalls := m["tool_calls"]
	hasCalls = hasCalls && kindOf(calls) != "null"
	callID, hasCallID := m["tool_call_id"]
	hasCallID = hasCallID && kindOf(callID) != "null"
	if (hasCalls || msg.Role == "tool") && !jobHasTools {
		return msg, errors.New("messages hold tool calls but the job has no tools: pass run --tools FILE")
	}
	if hasCalls && msg.Role != "assistant" {
		return msg, fmt.Errorf("messages[%d] (%s) has tool_calls: only an assistant message makes tool calls", i, msg.Role)
	}
	if hasCallID && msg.Role != "tool" {
		return msg, fmt.Errorf("messages[%d] (%s) has tool_call_id: only a tool message answers a tool call", i, msg.Role)
	}
	if hasCalls {
		var err error
		if msg.ToolCalls, err = parseToolCalls(i, calls); err != nil {
			return msg, err
		}
	}
	if msg.Role == "tool" {
		switch {
		case !hasCallID:
			return msg, fmt.Errorf("messages[%d].tool_call_id is missing: a tool message names the call it answers", i)
		case kindOf(callID) != "string" || unquote(callID) == "":
			return msg, fmt.Errorf("messages[%d].tool_call_id must be a non-empty string, got %s", i, value{raw: callID}.show())
		}
		msg.ToolCallID = unquote(callID)
	}

	content, ok := m["content"]
	switch {
	case (!ok || kindOf(content) == "null") && hasCalls:
		// An assistant message that only calls tools has no content.
	case !ok || kindOf(content) == "null":
		return msg, fmt.Errorf("messages[%d].content is missing", i)
	case kindOf(content) == "array":
		return msg, fmt.Errorf("messages[%d].content must be a string, got array (content parts are not supported)", i)
	case kindOf(content) != "string":
		return msg, fmt.Errorf("messages[%d].content must be a string, got %s", i, value{raw: content}.show())
	default:
		msg.Content = unquote(content)
	}
	if name, ok := m["name"]; ok && kindOf(name) != "null" {
		if kindOf(name) != "string" {
			return msg, fmt.Errorf("messages[%d].name must be a string, got %s", i, value{raw: name}.show())
		}
		msg.Name = unquote(name)
	}
	return msg, nil
}

// parseStop parses a stop string or an array of up to 4 strings; in CSV a
// cell holding a JSON array is the array, any other cell one string.
func parseStop(v value) ([]string, error) {
	raw, ok := asJSON(v, '[')
	if !ok {
		return []string{v.cell}, nil
	}
	bad := fmt.Errorf("stop must be a string or an array of up to 4 strings, got %s", v.show())
	switch kindOf(raw) {
	case "string":
		s := unquote(raw)
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	case "array":
	default:
		return nil, bad
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, bad
	}
	if len(elems) > 4 {
		return nil, fmt.Errorf("stop must be a string or an array of up to 4 strings, got %d strings", len(elems))
	}
	var out []string
	for i, e := range elems {
		if kindOf(e) != "string" || unquote(e) == "" {
			return nil, fmt.Errorf("stop[%d] must be a non-empty string, got %s", i, value{raw: e}.show())
		}
		out = append(out, unquote(e))
	}
	return out, nil
}

// parseResponseFormat parses {"type": "text" | "json_object"} or
// {"type": "json_schema", "json_schema": {"name", "schema", "strict"?,
// "description"?}}; in CSV the cell may also be just the type.
func parseResponseFormat(v value) (*tasks.ResponseFormat, error) {
	var typ value
	var m map[string]json.RawMessage
	raw, ok := asJSON(v, '{')
	switch {
	case !ok:
		typ = value{cell: strings.TrimSpace(v.cell), isCSV: true}
	case kindOf(raw) != "object":
		return nil, fmt.Errorf(`response_format must be an object like {"type":"json_object"}, got %s`, v.show())
	default:
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("response_format: %v", err)
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k != "type" && k != "json_schema" {
				return nil, fmt.Errorf("response_format has unsupported key %q (only type and json_schema)", k)
			}
		}
		t, ok := m["type"]
		if !ok || kindOf(t) == "null" {
			return nil, fmt.Errorf("response_format.type is missing")
		}
		typ = value{raw: t}
	}
	s, _ := typ.str()
	switch s {
	case "text", "json_object":
		if _, ok := m["json_schema"]; ok {
			return nil, fmt.Errorf(`response_format.json_schema goes with type "json_schema", got type %q`, s)
		}
		return &tasks.ResponseFormat{Type: s}, nil
	case "json_schema":
		js, ok := m["json_schema"]
		if !ok || kindOf(js) != "object" {
			return nil, fmt.Errorf(`response_format of type "json_schema" needs "json_schema": {"name", "schema"}`)
		}
		sch, err := ParseJSONSchema(js)
		if err != nil {
			return nil, fmt.Errorf("response_format.json_schema: %w", err)
		}
		return &tasks.ResponseFormat{Type: s, JSONSchema: sch}, nil
	}
	return nil, fmt.Errorf(`response_format.type must be "text", "json_object" or "json_schema", got %s`, typ.show())
}

// SchemaFile reads a --schema file: OpenAI's json_schema object {"name"?,
// "schema", "strict"?, "description"?}, or a bare JSON Schema; without a
// name it is named after the file. "schema" is no JSON Schema keyword, so
// a file that has it is the json_schema object (read as a bare schema, it
// would constrain nothing).
func SchemaFile(b []byte, path string) (*tasks.JSONSchema, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	_, hasName := probe["name"]
	_, hasSchema := probe["schema"]
	switch {
	case hasName && hasSchema:
		return ParseJSONSchema(b)
	case hasSchema:
		probe["name"] = json.RawMessage(strconv.Quote(fileSchemaName(path)))
		doc, _ := json.Marshal(probe)
		return ParseJSONSchema(doc)
	}
	doc, _ := json.Marshal(map[string]json.RawMessage{"name": json.RawMessage(strconv.Quote(fileSchemaName(path))), "schema": b})
	return ParseJSONSchema(doc)
}

// fileSchemaName names a schema after its file: the base name without its
// extension, other characters than OpenAI allows as "_".
func fileSchemaName(path string) string {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	name = regexp.MustCompile(`[^a-zA-Z0-9_-]+`).ReplaceAllString(name, "_")
	if name == "" || len(name) > 64 {
		name = "answer"
	}
	return name
}

// schemaName is OpenAI's rule for a json_schema's name.
var schemaName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ParseJSONSchema parses OpenAI's json_schema object {"name", "schema",
// "strict"?, "description"?}; the schema must compile (package schema).
// The schema is kept compact, as given otherwise.
func ParseJSONSchema(raw []byte) (*tasks.JSONSchema, error) {
	var js tasks.JSONSchema
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&js); err != nil {
		return nil, err
	}
	if !schemaName.MatchString(js.Name) {
		return nil, fmt.Errorf("name must be 1 to 64 letters, digits, _ or -, got %q", js.Name)
	}
	if kindOf(js.Schema) != "object" {
		return nil, fmt.Errorf("schema must be a JSON Schema object, got %s", kindOf(js.Schema))
	}
	if _, err := schema.Compile(js.Schema); err != nil {
		return nil, fmt.Errorf("schema: %v", err)
	}
	var b bytes.Buffer
	_ = json.Compact(&b, js.Schema) // valid: it decoded
	js.Schema = b.Bytes()
	return &js, nil
}

// maxInputs is the most inputs one embedding item may carry (OpenAI takes
// 2,048 per request).
const maxInputs = 2048

// parseInput parses an embedding input: a string, or an array of strings
// (OpenAI's forms; token arrays are not supported). In CSV a cell is one
// input.
func parseInput(v value) ([]string, error) {
	if v.isCSV {
		if strings.TrimSpace(v.cell) == "" {
			return nil, errors.New("input is empty")
		}
		return []string{v.cell}, nil
	}
	switch kindOf(v.raw) {
	case "string":
		s := unquote(v.raw)
		if s == "" {
			return nil, errors.New("input is an empty string")
		}
		return []string{s}, nil
	case "array":
	default:
		return nil, fmt.Errorf("input must be a string or an array of strings, got %s", v.show())
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(v.raw, &elems); err != nil {
		return nil, fmt.Errorf("input: %v", err)
	}
	switch {
	case len(elems) == 0:
		return nil, errors.New("input is an empty array")
	case len(elems) > maxInputs:
		return nil, fmt.Errorf("input has %d strings, more than %d", len(elems), maxInputs)
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if kindOf(e) != "string" || unquote(e) == "" {
			return nil, fmt.Errorf("input[%d] must be a non-empty string, got %s (token arrays are not supported)", i, value{raw: e}.show())
		}
		out[i] = unquote(e)
	}
	return out, nil
}

// parseMetadata returns metadata as compact JSON; a CSV cell that is not
// JSON becomes a JSON string.
func parseMetadata(v value) json.RawMessage {
	raw := v.raw
	if v.isCSV {
		raw = []byte(v.cell)
		if !json.Valid(raw) {
			b, _ := json.Marshal(v.cell)
			return b
		}
	}
	var b bytes.Buffer
	_ = json.Compact(&b, raw) // valid JSON
	return b.Bytes()
}
