package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file builds the answer to a json_schema request: a JSON value made to
// conform to the request's schema, with the reply text wherever a free
// string goes. The rules are the package doc's ("Structured output"); a
// schema they cannot satisfy makes schemaReply fail, and the caller answers
// {"reply":...} instead.

// Bounds on the work one schema may cause.
const (
	maxSchemaDepth = 64    // nested schemas and $ref hops on one path
	maxSchemaNodes = 10000 // values in one generated answer
)

// errSchema wraps why a schema is beyond the generator.
var errSchema = errors.New("unsupported schema")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errSchema, fmt.Sprintf(format, args...))
}

// schemaReply returns a compact JSON text conforming to schema (an object's
// JSON text), whose free strings say text.
func schemaReply(schema json.RawMessage, text string) (string, error) {
	root, err := decodeOrdered(schema)
	if err != nil {
		return "", err
	}
	g := &schemaGen{root: root, text: text}
	v, err := g.value(root, 0)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// jsonObject is a decoded JSON object that keeps its keys' order, so an
// answer lists properties in the schema's order, as OpenAI's do.
type jsonObject struct {
	keys []string
	vals map[string]any
}

func (o *jsonObject) get(k string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.vals[k]
	return v, ok
}

func (o *jsonObject) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// MarshalJSON writes the object with its keys in order.
func (o *jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k) // a string: cannot fail
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodeOrdered decodes JSON text into *jsonObject, []any, string,
// json.Number, bool and nil.
func decodeOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the schema")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &jsonObject{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			o.set(kt.(string), v) // object keys are strings
		}
		_, err := dec.Token() // '}'
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token() // ']'
		return a, err
	}
	return tok, nil
}

// schemaGen generates values for the schemas of one document.
type schemaGen struct {
	root  any    // the whole schema, for $ref
	text  string // the reply text free strings carry
	nodes int    // values generated so far
}

// value returns a value conforming to schema s, at nesting depth.
func (g *schemaGen) value(s any, depth int) (any, error) {
	if depth > maxSchemaDepth {
		return nil, unsupported("nesting or $ref recursion deeper than %d", maxSchemaDepth)
	}
	if g.nodes++; g.nodes > maxSchemaNodes {
		return nil, unsupported("the answer would have more than %d values", maxSchemaNodes)
	}
	var o *jsonObject
	switch s := s.(type) {
	case bool:
		if !s {
			return nil, unsupported("the false schema matches nothing")
		}
		return g.text, nil
	case *jsonObject:
		o = s
	default:
		return nil, unsupported("a schema must be an object or a boolean")
	}

	if v, ok := o.get("const"); ok {
		return v, nil
	}
	if v, ok := o.get("enum"); ok {
		if vs, ok := v.([]any); ok && len(vs) > 0 {
			return vs[0], nil
		}
		return nil, unsupported("enum is not a non-empty array")
	}
	if v, ok := o.get("$ref"); ok {
		target, err := g.resolve(v)
		if err != nil {
			return nil, err
		}
		return g.value(target, depth+1)
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if v, ok := o.get(kw); ok {
			branch, err := firstBranch(kw, v)
			if err != nil {
				return nil, err
			}
			return g.value(branch, depth+1)
		}
	}
	if v, ok := o.get("allOf"); ok {
		if vs, ok := v.([]any); ok && len(vs) == 1 {
			return g.value(vs[0], depth+1)
		}
		return nil, unsupported("allOf with other than one schema")
	}
	if _, ok := o.get("not"); ok {
		return nil, unsupported("not")
	}

	typ, err := schemaType(o)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "object":
		return g.object(o, depth)
	case "array":
		return g.array(o, depth)
	case "string":
		return g.str(o)
	case "integer", "number":
		return number(o, typ == "integer")
	case "boolean":
		return true, nil
	case "null":
		return nil, nil
	}
	return nil, unsupported("type %q", typ)
}

// firstBranch is the branch of an anyOf or oneOf taken: the first one that
// is not just {"type":"null"}, or the first.
func firstBranch(kw string, v any) (any, error) {
	vs, ok := v.([]any)
	if !ok || len(vs) == 0 {
		return nil, unsupported("%s is not a non-empty array", kw)
	}
	for _, b := range vs {
		if o, ok := b.(*jsonObject); ok && len(o.keys) == 1 {
			if t, _ := o.get("type"); t == "null" {
				continue
			}
		}
		return b, nil
	}
	return vs[0], nil
}

// resolve follows a $ref inside the document: "#" or a JSON pointer such
// as "#/$defs/Name" or "#/definitions/Name".
func (g *schemaGen) resolve(v any) (any, error) {
	ref, ok := v.(string)
	if !ok {
		return nil, unsupported("$ref is not a string")
	}
	if ref == "#" {
		return g.root, nil
	}
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, unsupported("$ref %q does not point inside the schema", ref)
	}
	cur := g.root
	for tok := range strings.SplitSeq(ptr, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case *jsonObject:
			next, ok := c.get(tok)
			if !ok {
				return nil, unsupported("$ref %q resolves to nothing", ref)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, unsupported("$ref %q resolves to nothing", ref)
			}
			cur = c[i]
		default:
			return nil, unsupported("$ref %q resolves to nothing", ref)
		}
	}
	return cur, nil
}

// schemaType is the type generated for o: its type, the first non-null one
// of a type array, or the one its keywords imply ("string" when none do:
// the reply text then fits a schema that allows anything).
func schemaType(o *jsonObject) (string, error) {
	switch t, _ := o.get("type"); t := t.(type) {
	case string:
		return t, nil
	case []any:
		first := ""
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return "", unsupported("type array holds a non-string")
			}
			if s != "null" {
				return s, nil
			}
			first = s
		}
		if first == "" {
			return "", unsupported("empty type array")
		}
		return first, nil
	case nil:
	default:
		return "", unsupported("type is neither a string nor an array")
	}
	has := func(kws ...string) bool {
		for _, k := range kws {
			if _, ok := o.get(k); ok {
				return true
			}
		}
		return false
	}
	switch {
	case has("properties", "required", "additionalProperties"):
		return "object", nil
	case has("items", "prefixItems", "minItems"):
		return "array", nil
	case has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
		return "number", nil
	}
	return "string", nil
}

// object returns o's required properties, or every property it lists when
// it has no required list, in the order of properties (then of required).
// A required name without a property schema takes additionalProperties'
// schema when that is an object, else the reply text.
func (g *schemaGen) object(o *jsonObject, depth int) (any, error) {
	props, _ := o.get("properties")
	po, _ := props.(*jsonObject)
	if props != nil && po == nil {
		return nil, unsupported("properties is not an object")
	}
	var names []string
	if req, ok := o.get("required"); ok {
		rs, ok := req.([]any)
		if !ok {
			return nil, unsupported("required is not an array")
		}
		want := map[string]bool{}
		for _, r := range rs {
			s, ok := r.(string)
			if !ok {
				return nil, unsupported("required holds a non-string")
			}
			want[s] = true
		}
		if po != nil {
			for _, k := range po.keys {
				if want[k] {
					names = append(names, k)
					delete(want, k)
				}
			}
		}
		for _, r := range rs {
			if s := r.(string); want[s] {
				names = append(names, s)
				delete(want, s)
			}
		}
	} else if po != nil {
		names = po.keys
	}
	out := &jsonObject{vals: map[string]any{}}
	for _, name := range names {
		ps, ok := po.get(name)
		if !ok {
			ps = true
			if ap, _ := o.get("additionalProperties"); ap != nil {
				if apo, ok := ap.(*jsonObject); ok {
					ps = apo
				}
			}
		}
		v, err := g.value(ps, depth+1)
		if err != nil {
			return nil, err
		}
		out.set(name, v)
	}
	return out, nil
}

// array returns minItems values (none by default): prefixItems' (or an
// array items', the older tuple form) in order, then items'.
func (g *schemaGen) array(o *jsonObject, depth int) (any, error) {
	n, err := nonNegInt(o, "minItems")
	if err != nil {
		return nil, err
	}
	var prefix []any
	var items any = true
	if p, ok := o.get("prefixItems"); ok {
		if prefix, ok = p.([]any); !ok {
			return nil, unsupported("prefixItems is not an array")
		}
	}
	if it, ok := o.get("items"); ok {
		if tuple, ok := it.([]any); ok {
			prefix = tuple
			if ai, ok := o.get("additionalItems"); ok {
				items = ai
			}
		} else {
			items = it
		}
	}
	out := []any{}
	seen := map[string]bool{}
	unique, _ := o.get("uniqueItems")
	for i := range n {
		s := items
		if i < len(prefix) {
			s = prefix[i]
		}
		v, err := g.value(s, depth+1)
		if err != nil {
			return nil, err
		}
		if unique == true {
			b, _ := json.Marshal(v)
			if seen[string(b)] {
				return nil, unsupported("uniqueItems with minItems %d: the items would repeat", n)
			}
			seen[string(b)] = true
		}
		out = append(out, v)
	}
	return out, nil
}

// str returns the reply text, cut to maxLength or padded with "-" to
// minLength (in characters). pattern and format are not honoured.
func (g *schemaGen) str(o *jsonObject) (any, error) {
	s := g.text
	lo, err := nonNegInt(o, "minLength")
	if err != nil {
		return nil, err
	}
	if _, ok := o.get("maxLength"); ok {
		hi, err := nonNegInt(o, "maxLength")
		if err != nil {
			return nil, err
		}
		if hi < lo {
			return nil, unsupported("maxLength below minLength")
		}
		if utf8.RuneCountInString(s) > hi {
			s = string([]rune(s)[:hi])
		}
	}
	if n := utf8.RuneCountInString(s); n < lo {
		s += strings.Repeat("-", lo-n)
	}
	return s, nil
}

// nonNegInt reads an optional non-negative integer keyword (0 when absent).
func nonNegInt(o *jsonObject, kw string) (int, error) {
	v, ok := o.get(kw)
	if !ok {
		return 0, nil
	}
	num, _ := v.(json.Number)
	n, err := strconv.Atoi(strings.TrimSuffix(string(num), ".0"))
	if err != nil || n < 0 {
		return 0, unsupported("%s is not a non-negative integer", kw)
	}
	if n > maxSchemaNodes {
		return 0, unsupported("%s %d is too large", kw, n)
	}
	return n, nil
}

// number returns 0, or the value nearest 0 from the bounds' side when
// minimum, exclusiveMinimum, maximum or exclusiveMaximum exclude 0: minimum
// itself, just past an exclusive bound. multipleOf is not honoured.
func number(o *jsonObject, integer bool) (any, error) {
	type bound struct {
		v         float64
		exclusive bool
		set       bool
	}
	read := func(kw string) (float64, bool, error) {
		v, ok := o.get(kw)
		if !ok {
			return 0, false, nil
		}
		num, ok := v.(json.Number)
		if !ok {
			return 0, false, nil // draft-04's boolean exclusive bounds
		}
		f, err := num.Float64()
		if err != nil {
			return 0, false, unsupported("%s is not a number", kw)
		}
		return f, true, nil
	}
	var lo, hi bound
	var err error
	if lo.v, lo.set, err = read("minimum"); err != nil {
		return nil, err
	}
	if hi.v, hi.set, err = read("maximum"); err != nil {
		return nil, err
	}
	// Draft 4: exclusiveMinimum true makes minimum exclusive.
	if b, _ := o.get("exclusiveMinimum"); b == true {
		lo.exclusive = lo.set
	}
	if b, _ := o.get("exclusiveMaximum"); b == true {
		hi.exclusive = hi.set
	}
	if x, ok, err := read("exclusiveMinimum"); err != nil {
		return nil, err
	} else if ok && (!lo.set || x >= lo.v) {
		lo = bound{v: x, exclusive: true, set: true}
	}
	if x, ok, err := read("exclusiveMaximum"); err != nil {
		return nil, err
	} else if ok && (!hi.set || x <= hi.v) {
		hi = bound{v: x, exclusive: true, set: true}
	}

	ok := func(v float64) bool {
		return (!lo.set || v > lo.v || (v == lo.v && !lo.exclusive)) &&
			(!hi.set || v < hi.v || (v == hi.v && !hi.exclusive)) &&
			(!integer || v == math.Trunc(v))
	}
	v := 0.0
	switch {
	case ok(v):
	case lo.set && v < lo.v || lo.set && lo.exclusive && v == lo.v:
		v = lo.v
		if integer {
			v = math.Floor(lo.v) + 1
			if !lo.exclusive && lo.v == math.Trunc(lo.v) {
				v = lo.v
			}
		} else if lo.exclusive {
			v = lo.v + 1
			if hi.set && !ok(v) {
				v = lo.v + (hi.v-lo.v)/2
			}
		}
	default: // above an upper bound
		v = hi.v
		if integer {
			v = math.Ceil(hi.v) - 1
			if !hi.exclusive && hi.v == math.Trunc(hi.v) {
				v = hi.v
			}
		} else if hi.exclusive {
			v = hi.v - 1
			if lo.set && !ok(v) {
				v = lo.v + (hi.v-lo.v)/2
			}
		}
	}
	if !ok(v) || math.IsInf(v, 0) || math.IsNaN(v) {
		return nil, unsupported("no number fits the bounds")
	}
	return json.Number(strconv.FormatFloat(v, 'f', -1, 64)), nil
}
