package input

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/llmfleet/llmfleet/tasks"
)

// The fields of an agent item (tools, tool_choice, parallel_tool_calls)
// and the tool calls and replies of its messages. All of them need a job
// with tools (Options.Tools).

// noTools is the error of a tool field in an item whose job has no tools.
func noTools(what string) error {
	return fmt.Errorf("%s but the job has none: pass run --tools FILE", what)
}

// parseTools parses an item's tools: a JSON array of the names of some of
// the job's tools; in CSV a cell holding such an array, or a
// comma-separated list of names.
func (r *Reader) parseTools(v value) ([]string, error) {
	if len(r.opts.Tools) == 0 {
		return nil, noTools("item names tools")
	}
	var names []string
	raw, isJSON := v.raw, true
	if v.isCSV {
		cell := strings.TrimSpace(v.cell)
		if isJSON = strings.HasPrefix(cell, "["); isJSON {
			raw = []byte(cell)
			if err := json.Unmarshal(raw, new(json.RawMessage)); err != nil {
				return nil, fmt.Errorf("tools must be a JSON array of tool names or a comma-separated list: malformed JSON: %v", err)
			}
		} else {
			for n := range strings.SplitSeq(cell, ",") {
				names = append(names, strings.TrimSpace(n))
			}
		}
	}
	if isJSON {
		if kindOf(raw) != "array" {
			return nil, fmt.Errorf("tools must be an array of tool names, got %s", v.show())
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, fmt.Errorf("tools: %v", err)
		}
		if len(elems) == 0 {
			return nil, errors.New("tools is empty: omit it to give the item all of the job's tools")
		}
		for k, e := range elems {
			if kindOf(e) != "string" {
				return nil, fmt.Errorf("tools[%d] must be a tool name (a string), got %s", k, value{raw: e}.show())
			}
			names = append(names, unquote(e))
		}
	}
	for k, n := range names {
		switch {
		case n == "":
			return nil, fmt.Errorf("tools[%d] is empty: want a tool name", k)
		case slices.Contains(names[:k], n):
			return nil, fmt.Errorf("tools[%d] %q repeats tools[%d]", k, n, slices.Index(names, n))
		case !slices.Contains(r.opts.Tools, n):
			return nil, fmt.Errorf("tools[%d] %q is not one of the job's tools (%s)", k, n, listNames(r.opts.Tools))
		}
	}
	return names, nil
}

// toolChoiceUsage is what tool_choice accepts, for error messages.
const toolChoiceUsage = `"none", "auto", "required" or {"type":"function","function":{"name":NAME}}`

// parseToolChoice parses tool_choice: "none", "auto", "required" or
// {"type":"function","function":{"name":NAME}}, NAME one of the item's
// tools, or of the job's when the item names none (itemTools is nil).
// itemToolsOK is false when the item's tools were rejected: NAME is then
// not checked. The result is compact JSON, written the same way for every
// item that means the same choice. In CSV the cell may also be the bare
// string.
func (r *Reader) parseToolChoice(v value, itemTools []string, itemToolsOK bool) (json.RawMessage, error) {
	if len(r.opts.Tools) == 0 {
		return nil, noTools("tool_choice needs tools")
	}
	var (
		s     string
		isStr bool
	)
	raw, ok := asJSON(v, '{')
	switch {
	case !ok:
		s, isStr = strings.TrimSpace(v.cell), true
	case kindOf(raw) == "string":
		s, isStr = unquote(raw), true
	case kindOf(raw) != "object":
		return nil, fmt.Errorf("tool_choice must be %s, got %s", toolChoiceUsage, v.show())
	}
	if isStr {
		if s == "none" || s == "auto" || s == "required" {
			b, _ := json.Marshal(s)
			return b, nil
		}
		return nil, fmt.Errorf("tool_choice must be %s, got %s", toolChoiceUsage, v.show())
	}

	m, err := object("tool_choice", raw, "type", "function")
	if err != nil {
		return nil, err
	}
	switch t, ok := m["type"]; {
	case !ok || kindOf(t) == "null":
		return nil, errors.New(`tool_choice.type is missing (want "function")`)
	case kindOf(t) != "string" || unquote(t) != "function":
		return nil, fmt.Errorf(`tool_choice.type must be "function", got %s`, value{raw: t}.show())
	}
	fn, ok := m["function"]
	switch {
	case !ok || kindOf(fn) == "null":
		return nil, errors.New(`tool_choice.function is missing (want {"name":NAME})`)
	case kindOf(fn) != "object":
		return nil, fmt.Errorf(`tool_choice.function must be an object {"name":NAME}, got %s`, value{raw: fn}.show())
	}
	fm, err := object("tool_choice.function", fn, "name")
	if err != nil {
		return nil, err
	}
	name, err := nonEmptyString("tool_choice.function.name", fm)
	if err != nil {
		return nil, err
	}
	switch {
	case !itemToolsOK:
	case len(itemTools) > 0 && !slices.Contains(itemTools, name):
		return nil, fmt.Errorf("tool_choice names tool %q, which is not one of the item's tools (%s)", name, listNames(itemTools))
	case len(itemTools) == 0 && !slices.Contains(r.opts.Tools, name):
		return nil, fmt.Errorf("tool_choice names tool %q, which is not one of the job's tools (%s)", name, listNames(r.opts.Tools))
	}
	var choice struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	choice.Type, choice.Function.Name = "function", name
	b, _ := json.Marshal(choice)
	return b, nil
}

// parseParallelToolCalls parses a boolean; in CSV "true" or "false".
func (r *Reader) parseParallelToolCalls(v value) (*bool, error) {
	if len(r.opts.Tools) == 0 {
		return nil, noTools("parallel_tool_calls needs tools")
	}
	var b bool
	switch {
	case v.isCSV && strings.EqualFold(strings.TrimSpace(v.cell), "true"):
		b = true
	case v.isCSV && strings.EqualFold(strings.TrimSpace(v.cell), "false"):
	case !v.isCSV && kindOf(v.raw) == "bool":
		b = v.raw[0] == 't'
	default:
		return nil, fmt.Errorf("parallel_tool_calls must be true or false, got %s", v.show())
	}
	return &b, nil
}

// parseToolCalls parses messages[i].tool_calls: a non-empty array of
// {id, type: "function", function: {name, arguments}}. arguments is the
// text the model wrote, kept as is: it need not be valid JSON.
func parseToolCalls(i int, raw json.RawMessage) ([]tasks.ToolCall, error) {
	at := fmt.Sprintf("messages[%d].tool_calls", i)
	if kindOf(raw) != "array" {
		return nil, fmt.Errorf("%s must be an array of {id, type, function} objects, got %s", at, value{raw: raw}.show())
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%s: %v", at, err)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("%s is empty: an assistant message without tool calls omits it", at)
	}
	calls := make([]tasks.ToolCall, 0, len(elems))
	for k, e := range elems {
		at := fmt.Sprintf("%s[%d]", at, k)
		if kindOf(e) != "object" {
			return nil, fmt.Errorf("%s must be an object {id, type, function}, got %s", at, value{raw: e}.show())
		}
		m, err := object(at, e, "id", "type", "function")
		if err != nil {
			return nil, err
		}
		var c tasks.ToolCall
		if c.ID, err = nonEmptyString(at+".id", m); err != nil {
			return nil, err
		}
		switch t, ok := m["type"]; {
		case !ok || kindOf(t) == "null":
			return nil, fmt.Errorf(`%s.type is missing (want "function")`, at)
		case kindOf(t) != "string" || unquote(t) != "function":
			return nil, fmt.Errorf(`%s.type must be "function", got %s`, at, value{raw: t}.show())
		}
		c.Type = "function"
		fn, ok := m["function"]
		switch {
		case !ok || kindOf(fn) == "null":
			return nil, fmt.Errorf("%s.function is missing (want {name, arguments})", at)
		case kindOf(fn) != "object":
			return nil, fmt.Errorf("%s.function must be an object {name, arguments}, got %s", at, value{raw: fn}.show())
		}
		fm, err := object(at+".function", fn, "name", "arguments")
		if err != nil {
			return nil, err
		}
		if c.Function.Name, err = nonEmptyString(at+".function.name", fm); err != nil {
			return nil, err
		}
		switch a, ok := fm["arguments"]; {
		case !ok || kindOf(a) == "null":
			return nil, fmt.Errorf(`%s.function.arguments is missing (the arguments' JSON text, "{}" for none)`, at)
		case kindOf(a) != "string":
			return nil, fmt.Errorf("%s.function.arguments must be a string (the arguments' JSON text), got %s", at, value{raw: a}.show())
		default:
			c.Function.Arguments = unquote(a)
		}
		calls = append(calls, c)
	}
	return calls, nil
}

// object decodes a JSON object known to be one, and rejects keys other
// than keys; at names it in errors.
func object(at string, raw json.RawMessage, keys ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", at, err)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(keys, k) {
			return nil, fmt.Errorf("%s has unsupported key %q (only %s)", at, k, andList(keys))
		}
	}
	return m, nil
}

// nonEmptyString returns the member of m that at names (its last
// dot-separated part), which must be a non-empty string.
func nonEmptyString(at string, m map[string]json.RawMessage) (string, error) {
	v, ok := m[at[strings.LastIndexByte(at, '.')+1:]]
	switch {
	case !ok || kindOf(v) == "null":
		return "", fmt.Errorf("%s is missing", at)
	case kindOf(v) != "string" || unquote(v) == "":
		return "", fmt.Errorf("%s must be a non-empty string, got %s", at, value{raw: v}.show())
	}
	return unquote(v), nil
}

// andList joins words as "a", "a and b" or "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// quotedList joins quoted strings: `"a"` or `"a", "b"`.
func quotedList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// toolOrder checks OpenAI's rules for tool calls in an item's messages,
// one message at a time: an assistant message with tool_calls opens a
// group; each call must be answered by exactly one tool message before the
// next message that is not a tool message; a tool message answers a call
// of the group it is in; call ids are unique within the item.
type toolOrder struct {
	made     map[string]int // every call id so far: the message that made it
	open     bool           // tool messages may follow: msgs[group] made calls
	group    int            // the assistant message whose calls are being answered
	answered map[string]int // call id of the open group: the tool message answering it
}

// next checks the last of msgs against the messages before it.
func (o *toolOrder) next(msgs []tasks.Message) error {
	i := len(msgs) - 1
	m := msgs[i]
	if m.Role == "tool" {
		id := m.ToolCallID
		if !o.open {
			if i == 0 {
				return fmt.Errorf("messages[0] (tool) answers call %q but comes first: a tool message must follow the assistant message that made the call", id)
			}
			msg := fmt.Sprintf("messages[%d] (tool) answers call %q but follows messages[%d] (%s), not an assistant message with tool_calls or a tool reply to one", i, id, i-1, msgs[i-1].Role)
			if at, ok := o.made[id]; ok {
				msg += fmt.Sprintf(" (messages[%d] made the call)", at)
			}
			return errors.New(msg)
		}
		if !slices.ContainsFunc(msgs[o.group].ToolCalls, func(c tasks.ToolCall) bool { return c.ID == id }) {
			msg := fmt.Sprintf("messages[%d] (tool) answers call %q which messages[%d] did not make", i, id, o.group)
			if at, ok := o.made[id]; ok {
				msg += fmt.Sprintf(" (messages[%d] did: its replies belong right after it)", at)
			}
			return errors.New(msg)
		}
		if j, ok := o.answered[id]; ok {
			return fmt.Errorf("messages[%d] (tool) answers call %q again: messages[%d] already answered it", i, id, j)
		}
		o.answered[id] = i
		return nil
	}
	if err := o.close(msgs, fmt.Sprintf("before messages[%d] (%s)", i, m.Role)); err != nil {
		return err
	}
	if len(m.ToolCalls) == 0 {
		return nil
	}
	if o.made == nil {
		o.made, o.answered = make(map[string]int), make(map[string]int)
	}
	for k, c := range m.ToolCalls {
		if at, ok := o.made[c.ID]; ok {
			first := slices.IndexFunc(msgs[at].ToolCalls, func(p tasks.ToolCall) bool { return p.ID == c.ID })
			return fmt.Errorf("messages[%d].tool_calls[%d].id %q is already used by messages[%d].tool_calls[%d]: call ids must be unique within an item", i, k, c.ID, at, first)
		}
		o.made[c.ID] = i
	}
	o.open, o.group = true, i
	clear(o.answered)
	return nil
}

// end checks that the messages do not end with calls still unanswered.
func (o *toolOrder) end(msgs []tasks.Message) error {
	return o.close(msgs, "before the messages end")
}

// close ends the open group, if any: every call it made must have been
// answered. where says what comes next, for the error.
func (o *toolOrder) close(msgs []tasks.Message, where string) error {
	if !o.open {
		return nil
	}
	o.open = false
	var missing []string
	for _, c := range msgs[o.group].ToolCalls {
		if _, ok := o.answered[c.ID]; !ok {
			missing = append(missing, c.ID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	it := "it"
	if len(missing) > 1 {
		it = "them"
	}
	return fmt.Errorf("messages[%d] (assistant) calls %s but no tool message answers %s %s", o.group, quotedList(missing), it, where)
}
