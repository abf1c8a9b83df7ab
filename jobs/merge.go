package jobs

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// MergeSummary is what Merge did.
type MergeSummary struct {
	Files int `json:"files"`
	// Results is the number of result lines written (one per id).
	Results int `json:"results"`
	// Failures is the number of failed rows written: ids no file has a
	// success for.
	Failures int `json:"failures"`
	// OlderResultsDropped are successes beaten by a newer one for the id.
	OlderResultsDropped int `json:"older_results_dropped"`
	// FailuresSuperseded are failures dropped because the id succeeded.
	FailuresSuperseded int `json:"failures_superseded"`
	// DuplicateFailuresDropped are repeated failures of one id (the last
	// one read is kept).
	DuplicateFailuresDropped int    `json:"duplicate_failures_dropped"`
	ResultsFile              string `json:"results_file"`
	FailedFile               string `json:"failed_file,omitempty"`
}

// FailedPath is where Merge writes failures for a results file path.
func FailedPath(out string) string {
	if base, ok := strings.CutSuffix(out, ".results.jsonl"); ok {
		return base + ".failed.csv"
	}
	return out + ".failed.csv"
}

type mergedResult struct {
	line     []byte
	finished time.Time
}

// Merge combines results files (.jsonl) and failed-item files (.csv) from
// several runs or jobs into one clean results file at out, one line per id,
// and the failures no success superseded into FailedPath(out). A success
// beats a failure and the newest success (finished_at) wins; ids keep the
// order in which they first appear across the files, in the order given.
func Merge(out string, files []string) (MergeSummary, error) {
	sum := MergeSummary{Files: len(files), ResultsFile: out}
	if len(files) == 0 {
		return sum, &UsageError{Msg: "merge needs at least one input file"}
	}
	var order []string
	seen := map[string]bool{}
	note := func(id string) {
		if !seen[id] {
			seen[id] = true
			order = append(order, id)
		}
	}
	results := map[string]mergedResult{}
	failures := map[string]map[string]string{}
	var columns []string
	colSeen := map[string]bool{}
	for _, path := range files {
		var err error
		switch {
		case strings.HasSuffix(path, ".jsonl"):
			err = ReadResults(path, func(id string, line []byte, finished time.Time) {
				note(id)
				cur, ok := results[id]
				switch {
				case !ok:
				case finished.Before(cur.finished):
					sum.OlderResultsDropped++
					return
				default:
					sum.OlderResultsDropped++
				}
				results[id] = mergedResult{line: line, finished: finished}
			})
			if err != nil {
				err = fmt.Errorf("merge: %w", err)
			}
		case strings.HasSuffix(path, ".csv"):
			err = readFailed(path, func(header []string, row map[string]string) {
				for _, c := range header {
					if !colSeen[c] {
						colSeen[c] = true
						columns = append(columns, c)
					}
				}
				id := row["id"]
				note(id)
				if _, dup := failures[id]; dup {
					sum.DuplicateFailuresDropped++
				}
				failures[id] = row
			})
		default:
			return sum, &UsageError{Msg: fmt.Sprintf("merge: %s: want a .jsonl results file or a .csv failed-items file", path)}
		}
		if err != nil {
			return sum, err
		}
	}
	for id := range failures {
		if _, ok := results[id]; ok {
			sum.FailuresSuperseded++
			delete(failures, id)
		}
	}
	if err := WriteAtomic(out, func(w io.Writer) error {
		for _, id := range order {
			if r, ok := results[id]; ok {
				if _, err := w.Write(append(r.line, '\n')); err != nil {
					return err
				}
				sum.Results++
			}
		}
		return nil
	}); err != nil {
		return sum, err
	}
	if len(failures) == 0 {
		return sum, nil
	}
	sum.FailedFile = FailedPath(out)
	// id first, the error columns last, the item's fields between.
	var fields []string
	for _, c := range columns {
		if c != "id" && !slices.Contains(FailedColumns, c) {
			fields = append(fields, c)
		}
	}
	header := append(append([]string{"id"}, fields...), FailedColumns...)
	err := WriteAtomic(sum.FailedFile, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(header); err != nil {
			return err
		}
		row := make([]string, len(header))
		for _, id := range order {
			f, ok := failures[id]
			if !ok {
				continue
			}
			for i, c := range header {
				row[i] = f[c]
			}
			if err := cw.Write(row); err != nil {
				return err
			}
			sum.Failures++
		}
		cw.Flush()
		return cw.Error()
	})
	return sum, err
}

// ReadResults calls fn for each line of a results file (export's JSONL)
// with the line's id and finished_at; blank lines are skipped, and a line
// that is not a result is an error naming it.
func ReadResults(path string, fn func(id string, line []byte, finished time.Time)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var r struct {
			ID         *string   `json:"id"`
			FinishedAt time.Time `json:"finished_at"`
		}
		if err := json.Unmarshal(b, &r); err != nil || r.ID == nil {
			return fmt.Errorf("%s line %d is not a result line (want a JSON object with an id)", path, n)
		}
		fn(*r.ID, append([]byte(nil), b...), r.FinishedAt)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readFailed(path string, fn func(header []string, row map[string]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(f))
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("merge: %s: %w", path, err)
	}
	if !slices.Contains(header, "id") || !slices.Contains(header, "error_class") {
		return fmt.Errorf("merge: %s: not a failed-items file (its header needs id and error_class)", path)
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("merge: %s: %w", path, err)
		}
		row := make(map[string]string, len(header))
		for i, c := range header {
			if i < len(rec) {
				row[c] = rec[i]
			}
		}
		fn(header, row)
	}
}

// WriteAtomic writes path through a temporary file renamed into place, so
// an interruption never leaves a half file that a later run would trust.
func WriteAtomic(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
