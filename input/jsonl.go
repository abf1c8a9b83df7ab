package input

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/tasks"
)

// nextJSONL reads lines until one is not blank and returns its item, or
// ok=false after recording its rejection. err is io.EOF at the end.
func (r *Reader) nextJSONL() (line int, it tasks.Item, ok bool, err error) {
	for {
		b, n, over, blank, err := r.readLine()
		if err != nil {
			return 0, it, false, err
		}
		r.lineNo++
		if blank {
			continue
		}
		r.stats.Lines++
		if over {
			r.reject(r.lineNo, fmt.Sprintf("item is %d bytes, over --max-item-bytes %d", n, r.maxBytes))
			return r.lineNo, it, false, nil
		}
		it, msg := r.parseJSONL(b)
		if msg != "" {
			r.reject(r.lineNo, msg)
			return r.lineNo, it, false, nil
		}
		return r.lineNo, it, true, nil
	}
}

// readLine returns the next line without its "\n" or "\r\n". A line over
// the size limit is discarded as it is read, never held: over is true and n
// is its size. blank reports a whitespace-only line. err is io.EOF only
// when there is no line left.
func (r *Reader) readLine() (b []byte, n int, over, blank bool, err error) {
	r.buf = r.buf[:0]
	keep := r.maxBytes + len("\r\n")
	total := 0
	blank = true
	var last []byte
	var prevLast byte
	for {
		chunk, rerr := r.br.ReadSlice('\n')
		total += len(chunk)
		switch {
		case over:
			blank = blank && isBlank(chunk)
		case len(r.buf)+len(chunk) > keep:
			over = true
			blank = isBlank(r.buf) && isBlank(chunk)
			r.buf = r.buf[:0]
		default:
			r.buf = append(r.buf, chunk...)
		}
		if len(last) > 0 {
			prevLast = last[len(last)-1]
		}
		last = chunk
		if rerr == nil {
			break
		}
		if errors.Is(rerr, bufio.ErrBufferFull) {
			continue
		}
		if rerr == io.EOF && total > 0 {
			break
		}
		return nil, 0, false, false, rerr
	}
	if over {
		n = total
		if k := len(last); k > 0 && last[k-1] == '\n' {
			n--
			if (k > 1 && last[k-2] == '\r') || (k == 1 && prevLast == '\r') {
				n--
			}
		}
		return nil, n, true, blank, nil
	}
	b = r.buf
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > r.maxBytes {
		// Kept because its line ending might have fit; without it, it is
		// still over.
		return nil, len(b), true, isBlank(b), nil
	}
	return b, len(b), false, isBlank(b), nil
}

// parseJSONL turns one non-blank line into an item, or returns why not.
func (r *Reader) parseJSONL(line []byte) (tasks.Item, string) {
	if !utf8.Valid(line) {
		return tasks.Item{}, fmt.Sprintf("invalid UTF-8 at byte offset %d", invalidUTF8At(line))
	}
	lead := len(line) - len(bytes.TrimLeft(line, " \t\r\n\v\f"))
	obj := bytes.TrimSpace(line)
	if !json.Valid(obj) {
		err := json.Unmarshal(obj, new(json.RawMessage))
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Offset < int64(len(obj)) {
			return tasks.Item{}, fmt.Sprintf("malformed JSON: %v (byte offset %d)", err, int64(lead)+se.Offset-1)
		}
		return tasks.Item{}, fmt.Sprintf("malformed JSON: %v", err)
	}
	if obj[0] != '{' {
		return tasks.Item{}, fmt.Sprintf("an item must be a JSON object, got %s", kindOf(obj))
	}
	r.fs.reset()
	clear(r.keySet)
	var dup string
	scanObject(obj, func(key string, val []byte) {
		if _, ok := r.keySet[key]; ok {
			if dup == "" {
				dup = key
			}
			return
		}
		r.keySet[key] = struct{}{}
		r.fs.add(key, value{raw: val})
	})
	if dup != "" {
		return tasks.Item{}, fmt.Sprintf("duplicate key %q", dup)
	}
	if _, ok := r.keySet["custom_id"]; ok {
		return r.parseBatchLine()
	}
	if r.format == FormatOpenAIBatch {
		return tasks.Item{}, `not an OpenAI batch line: want {"custom_id", "method": "POST", "url", "body"}`
	}
	return r.build(&r.fs, func() (map[string]any, error) {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(obj))
		dec.UseNumber()
		err := dec.Decode(&m)
		return m, err
	})
}

// invalidUTF8At returns the offset of the first byte of b that is not part
// of a valid UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		c, size := utf8.DecodeRune(b[i:])
		if c == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// scanObject calls fn for each member of obj, a JSON object already known
// to be valid, in input order. val is the member's raw value, a sub-slice
// of obj.
func scanObject(obj []byte, fn func(key string, val []byte)) {
	i := skipSpace(obj, 1) // past '{'
	for i < len(obj) && obj[i] == '"' {
		end := endOfString(obj, i)
		key := unquote(obj[i:end])
		i = skipSpace(obj, end) + 1 // past ':'
		i = skipSpace(obj, i)
		vend := endOfValue(obj, i)
		fn(key, obj[i:vend])
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// endOfString returns the index just past the JSON string starting at i.
func endOfString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// endOfValue returns the index just past the JSON value starting at i.
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = endOfString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return j
			}
			j++
		}
		return j
	}
}

// unquote decodes a valid JSON string literal.
func unquote(q []byte) string {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1])
	}
	var s string
	_ = json.Unmarshal(q, &s) // q is valid JSON
	return s
}

// kindOf names the type of a valid JSON value.
func kindOf(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
