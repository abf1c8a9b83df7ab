package input

import (
	"encoding/csv"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/tasks"
)

// startCSV reads and checks the header. Every problem here would reject
// every row, so it is a *FileError.
func (r *Reader) startCSV() error {
	r.cr = csv.NewReader(r.br) // reuses r.br: it is a large enough bufio.Reader
	r.cr.FieldsPerRecord = -1
	r.cr.ReuseRecord = true
	rec, err := r.cr.Read()
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &FileError{Line: r.lineBase + pe.StartLine, Msg: "malformed CSV header: " + r.csvErr(pe)}
	}
	if err != nil {
		return err
	}
	line, _ := r.cr.FieldPos(0)
	line += r.lineBase
	fail := func(format string, a ...any) error {
		return &FileError{Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	r.header = make([]string, len(rec))
	col := make(map[string]int, len(rec))
	for i, name := range rec {
		if !utf8.ValidString(name) {
			return fail("CSV header: column %d: invalid UTF-8 at byte offset %d", i+1, invalidUTF8At([]byte(name)))
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return fail("CSV header: column %d has no name", i+1)
		}
		if j, ok := col[name]; ok {
			return fail("CSV header: duplicate column %q (columns %d and %d)", name, j+1, i+1)
		}
		col[name] = i
		r.header[i] = name
	}
	_, hasPrompt := col["prompt"]
	_, hasMsgs := col["messages"]
	_, hasInput := col["input"]
	switch {
	case r.tmpl != nil:
	case r.endpoint == tasks.EndpointEmbeddings && !hasInput:
		return fail(`CSV header has no "input" column, which embedding items need (or use --template)`)
	case r.endpoint != tasks.EndpointEmbeddings && !hasPrompt && !hasMsgs:
		return fail(`CSV header has no "prompt" or "messages" column (or use --template)`)
	}
	var missing []string
	for _, f := range r.tmplFields {
		if _, ok := col[f]; !ok {
			missing = append(missing, fmt.Sprintf("%q", f))
		}
	}
	if len(missing) > 0 {
		err := missingFields(missing, "not in CSV header (columns: "+listNames(r.header)+")")
		return fail("%s", err.Error())
	}
	r.noteFields(r.header)
	return nil
}

// nextCSV reads records until one is not blank and returns its item, or
// ok=false after recording its rejection. err is io.EOF at the end.
func (r *Reader) nextCSV() (line int, it tasks.Item, ok bool, err error) {
	for {
		rec, err := r.cr.Read()
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			line = r.lineBase + pe.StartLine
			r.stats.Lines++
			r.reject(line, "malformed CSV: "+r.csvErr(pe))
			return line, it, false, nil
		}
		if err != nil {
			return 0, it, false, err
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a whitespace-only line
		}
		line, _ = r.cr.FieldPos(0)
		line += r.lineBase
		r.stats.Lines++
		if msg := r.checkRecord(rec); msg != "" {
			r.reject(line, msg)
			return line, it, false, nil
		}
		r.fs.reset()
		for i, cell := range rec {
			r.fs.add(r.header[i], value{cell: cell, isCSV: true})
		}
		it, msg := r.build(&r.fs, func() (map[string]any, error) {
			m := make(map[string]any, len(rec))
			for i, cell := range rec {
				m[r.header[i]] = cell
			}
			return m, nil
		})
		if msg != "" {
			r.reject(line, msg)
			return line, it, false, nil
		}
		return line, it, true, nil
	}
}

// checkRecord returns what is wrong with a record's shape, or "".
func (r *Reader) checkRecord(rec []string) string {
	size := 0
	for _, cell := range rec {
		size += len(cell)
	}
	if size > r.maxBytes {
		return fmt.Sprintf("item is %d bytes, over --max-item-bytes %d", size, r.maxBytes)
	}
	for i, cell := range rec {
		if !utf8.ValidString(cell) {
			name := fmt.Sprintf("column %d", i+1)
			if i < len(r.header) {
				name = fmt.Sprintf("column %q", r.header[i])
			}
			return fmt.Sprintf("invalid UTF-8 in %s at byte offset %d", name, invalidUTF8At([]byte(cell)))
		}
	}
	if len(rec) != len(r.header) {
		return fmt.Sprintf("CSV record has %d fields, header has %d", len(rec), len(r.header))
	}
	return ""
}

// csvErr describes a CSV syntax error, with its position when it is not
// where the record starts.
func (r *Reader) csvErr(pe *csv.ParseError) string {
	if pe.Line != pe.StartLine {
		return fmt.Sprintf("%v (line %d, column %d)", pe.Err, r.lineBase+pe.Line, pe.Column)
	}
	return fmt.Sprintf("%v (column %d)", pe.Err, pe.Column)
}
