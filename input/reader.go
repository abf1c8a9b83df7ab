package input

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/llmfleet/llmfleet/tasks"
)

// Format is the syntax of an input file.
type Format string

// The input formats.
const (
	FormatJSONL Format = "jsonl" // one JSON object per line
	FormatCSV   Format = "csv"   // a header row, then one item per record
	// FormatOpenAIBatch is OpenAI Batch API input: JSONL whose every line
	// is {"custom_id", "method", "url", "body"}. Such lines are also
	// recognized in plain JSONL.
	FormatOpenAIBatch Format = "openai-batch"
)

// DefaultMaxItemBytes is the item size limit when Options.MaxItemBytes is 0.
const DefaultMaxItemBytes = 1 << 20

// ErrEmpty is returned by Reader.Next, instead of io.EOF, when the input
// holds no item at all: no non-blank line, or a CSV header and nothing else.
var ErrEmpty = errors.New("input is empty: no items")

// FileError is a problem with the whole file, such as a CSV header that
// would make every row fail. Reader.Next returns it and stops.
type FileError struct {
	Line int    // 1-based line of the problem
	Msg  string // what is wrong
}

func (e *FileError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Options configure a Reader. The zero value reads either format with no
// template, no system message and the default size limit.
type Options struct {
	// Format of the input. "" detects it: from the file name (.jsonl,
	// .ndjson and .json are JSONL, .csv is CSV), else from the first
	// non-blank byte ('{' is JSONL, anything else CSV).
	Format Format
	// Template is Go text/template source rendering the user message from
	// the item's fields (--template). It makes prompt optional and wins
	// over it; items with messages are rejected.
	Template string
	// System, when set, is added as the first message (--system).
	System string
	// JSONOutput sets response_format {"type":"json_object"} on every item
	// (--json-output).
	JSONOutput bool
	// Endpoint is tasks.EndpointEmbeddings when every item is an embedding
	// (run --endpoint embeddings): items then carry "input". Empty means
	// chat completions. OpenAI batch lines say their own.
	Endpoint string
	// Schema, when set, is the json_schema response format of every item
	// (--schema FILE); it wins over the items' own response_format.
	Schema *tasks.JSONSchema
	// MaxItemBytes rejects a JSONL line or a CSV record over this many
	// bytes (--max-item-bytes); 0 means DefaultMaxItemBytes.
	MaxItemBytes int
	// Tools are the names of the job's tools (run --tools FILE); nil or
	// empty means the job has none. An item's tools, tool_choice and
	// parallel_tool_calls, and messages with tool_calls or the tool role,
	// are accepted only when the job has tools, and an item's tools and
	// named tool_choice must be among them. Names must be non-empty and
	// unique.
	Tools []string
}

// Rejection is an input line that did not become an item.
type Rejection struct {
	Line  int    `json:"line"`  // 1-based; for CSV the line where the record starts
	Error string `json:"error"` // what is wrong with it
}

// Record is one accepted item and the line it came from.
type Record struct {
	Line int
	Item tasks.Item
}

// Stats count what a Reader has read so far.
type Stats struct {
	// Lines is the number of non-blank JSONL lines or CSV records (the
	// header excluded): Accepted + Rejected + DuplicatesCollapsed.
	Lines               int
	Accepted            int
	Rejected            int
	DuplicatesCollapsed int
}

// Reader reads items from an input file, one at a time. It is not safe for
// concurrent use.
type Reader struct {
	opts       Options
	name       string
	maxBytes   int
	tmpl       *template.Template
	tmplFields []string // top-level fields the template reads

	br       *bufio.Reader
	started  bool
	format   Format
	err      error // sticky: io.EOF, ErrEmpty, *FileError or a read error
	lineBase int   // blank lines skipped before the first non-blank byte

	// JSONL state.
	lineNo int
	buf    []byte
	fs     fieldSet
	keySet map[string]struct{}
	// endpoint is the current line's: Options.Endpoint, or an OpenAI batch
	// line's url.
	endpoint string
	// batchLine says the line being built is an OpenAI batch line: its
	// body is the request as given (no --system added).
	batchLine bool

	// CSV state.
	cr     *csv.Reader
	header []string

	fields     []string // item field names, first seen first
	fieldSeen  map[string]struct{}
	seen       map[[16]byte]seenItem
	rejections []Rejection
	stats      Stats
}

// seenItem is what the Reader remembers of an accepted id.
type seenItem struct {
	sum  [16]byte // truncated SHA-256 of the item's canonical encoding
	line int      // line that first used the id
}

// NewReader returns a Reader of r. name is the file name, used only to
// detect the format ("-" or "" for standard input). It validates opts and
// reads nothing yet; errors name the flag at fault.
func NewReader(r io.Reader, name string, opts Options) (*Reader, error) {
	switch opts.Format {
	case "", FormatJSONL, FormatCSV, FormatOpenAIBatch:
	default:
		return nil, fmt.Errorf("invalid input format %q: want %q, %q or %q", opts.Format, FormatJSONL, FormatCSV, FormatOpenAIBatch)
	}
	switch opts.Endpoint {
	case "", tasks.EndpointEmbeddings:
	default:
		return nil, fmt.Errorf("invalid --endpoint %q: want chat or %s", opts.Endpoint, tasks.EndpointEmbeddings)
	}
	if opts.MaxItemBytes < 0 {
		return nil, fmt.Errorf("invalid --max-item-bytes %d: must be positive", opts.MaxItemBytes)
	}
	if opts.System != "" && strings.TrimSpace(opts.System) == "" {
		return nil, errors.New("invalid --system: it is blank")
	}
	for i, name := range opts.Tools {
		if name == "" {
			return nil, fmt.Errorf("invalid --tools: tool %d has no name", i+1)
		}
		if j := slices.Index(opts.Tools[:i], name); j >= 0 {
			return nil, fmt.Errorf("invalid --tools: duplicate tool %q (tools %d and %d)", name, j+1, i+1)
		}
	}
	opts.Tools = slices.Clone(opts.Tools) // the caller's slice may change
	rd := &Reader{
		opts:      opts,
		name:      name,
		maxBytes:  opts.MaxItemBytes,
		br:        bufio.NewReaderSize(r, 64<<10),
		keySet:    make(map[string]struct{}),
		fieldSeen: make(map[string]struct{}),
		seen:      make(map[[16]byte]seenItem),
		endpoint:  opts.Endpoint,
	}
	if rd.maxBytes == 0 {
		rd.maxBytes = DefaultMaxItemBytes
	}
	if opts.Template != "" {
		if strings.TrimSpace(opts.Template) == "" {
			return nil, errors.New("invalid --template: it is blank")
		}
		t, err := template.New("prompt").Option("missingkey=error").Parse(opts.Template)
		if err != nil {
			return nil, fmt.Errorf("invalid --template: %w", err)
		}
		rd.tmpl = t
		rd.tmplFields = templateFields(t)
	}
	return rd, nil
}

// Next returns the next accepted item. Rejected lines and collapsed
// duplicates are not returned; they are recorded in Rejections and Stats.
// At the end it returns io.EOF, or ErrEmpty if the input held no item line
// at all. A *FileError means the file cannot be read as items; any other
// error is a read error of the underlying reader. Errors are final: later
// calls return the same error.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

// Rejections returns the lines rejected so far, in line order. The slice
// is the Reader's own: read it, do not modify it.
func (r *Reader) Rejections() []Rejection { return r.rejections }

// Stats returns the counts so far.
func (r *Reader) Stats() Stats { return r.stats }

// Fields returns the item field names seen so far, in first-seen order: the
// CSV header, or the union of the keys of the accepted JSONL items. They are
// the columns of a failed-items CSV.
func (r *Reader) Fields() []string { return append([]string(nil), r.fields...) }

func (r *Reader) next() (Record, error) {
	if !r.started {
		r.started = true
		if err := r.start(); err != nil {
			return Record{}, r.atEnd(err)
		}
	}
	for {
		var (
			line int
			it   tasks.Item
			ok   bool
			err  error
		)
		if r.format == FormatCSV {
			line, it, ok, err = r.nextCSV()
		} else {
			line, it, ok, err = r.nextJSONL()
		}
		if err != nil {
			return Record{}, r.atEnd(err)
		}
		if !ok || !r.admit(line, &it) {
			continue
		}
		return Record{Line: line, Item: it}, nil
	}
}

// atEnd turns the end of the input into io.EOF or ErrEmpty and read errors
// into errors that say so.
func (r *Reader) atEnd(err error) error {
	var fe *FileError
	switch {
	case err == io.EOF && r.stats.Lines == 0:
		return ErrEmpty
	case err == io.EOF, errors.As(err, &fe):
		return err
	default:
		return fmt.Errorf("read input: %w", err)
	}
}

// start skips a byte order mark and leading blank lines, detects the format
// and, for CSV, reads the header.
func (r *Reader) start() error {
	if b, err := r.br.Peek(3); bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		_, _ = r.br.Discard(3)
	} else if err != nil && err != io.EOF {
		return err
	}
	first, err := r.skipBlankLines()
	if err != nil {
		return err
	}
	r.format = r.opts.Format
	if r.format == "" {
		r.format = detect(r.name, first)
	}
	r.lineNo = r.lineBase
	if r.format == FormatCSV {
		return r.startCSV()
	}
	return nil
}

// detect picks the format from the file name, else from the first
// non-blank byte.
func detect(name string, first byte) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL
	case ".csv":
		return FormatCSV
	}
	if first == '{' {
		return FormatJSONL
	}
	return FormatCSV
}

// skipBlankLines consumes the whitespace-only lines at the start of the
// input, counting them in lineBase, and returns the first non-blank byte
// without consuming it. It returns io.EOF if there is none.
func (r *Reader) skipBlankLines() (byte, error) {
	n := 512
	for {
		buf, err := r.br.Peek(n)
		for i, c := range buf {
			if isSpace(c) {
				continue
			}
			if j := bytes.LastIndexByte(buf[:i], '\n'); j >= 0 {
				r.lineBase += bytes.Count(buf[:j+1], []byte("\n"))
				_, _ = r.br.Discard(j + 1)
			}
			return c, nil
		}
		if err != nil {
			return 0, err
		}
		if n < r.br.Size() {
			n = min(2*n, r.br.Size())
			continue
		}
		// A whole buffer of whitespace: drop it; only complete lines count.
		r.lineBase += bytes.Count(buf, []byte("\n"))
		_, _ = r.br.Discard(len(buf))
	}
}

// admit applies the duplicate rules to a built item and reports whether it
// is accepted.
func (r *Reader) admit(line int, it *tasks.Item) bool {
	if it.ID == "" {
		it.ID = it.DerivedID()
	}
	sum := sha256.Sum256(it.Canonical())
	idSum := sha256.Sum256([]byte(it.ID))
	key := [16]byte(idSum[:16])
	if prev, ok := r.seen[key]; ok {
		if prev.sum == [16]byte(sum[:16]) {
			r.stats.DuplicatesCollapsed++
			return false
		}
		r.reject(line, fmt.Sprintf("id %q already used on line %d with different content", it.ID, prev.line))
		return false
	}
	r.seen[key] = seenItem{sum: [16]byte(sum[:16]), line: line}
	r.stats.Accepted++
	if r.format != FormatCSV {
		r.noteFields(r.fs.names) // the line's keys in input order (JSONL, OpenAI batch); CSV noted its header
	}
	return true
}

// noteFields adds new field names to Fields, in the given order.
func (r *Reader) noteFields(names []string) {
	for _, k := range names {
		if _, ok := r.fieldSeen[k]; !ok {
			r.fieldSeen[k] = struct{}{}
			r.fields = append(r.fields, k)
		}
	}
}

func (r *Reader) reject(line int, msg string) {
	r.rejections = append(r.rejections, Rejection{Line: line, Error: msg})
	r.stats.Rejected++
}

// isSpace reports whether c is ASCII whitespace; a line of nothing else is
// blank.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}
