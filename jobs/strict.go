package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/input"
)

// rewindable returns r as a seekable reader, copying a stream to a temporary
// file (removed by cleanup) so a large input is not held in memory.
func rewindable(r io.Reader) (io.ReadSeeker, func(), error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		if _, err := rs.Seek(0, io.SeekCurrent); err == nil {
			return rs, func() {}, nil
		}
	}
	f, err := os.CreateTemp("", "llmfleet-input-*")
	if err != nil {
		return nil, nil, fmt.Errorf("buffer input for --strict: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, r); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("buffer input for --strict: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("buffer input for --strict: %w", err)
	}
	return f, cleanup, nil
}

// check reads the whole input without recording anything and returns every
// bad line: parse rejections and ids the job holds with other content.
func check(ctx context.Context, store *checkpoint.Store, job string, r io.Reader, name string, opts input.Options) ([]input.Rejection, error) {
	rd, err := input.NewReader(r, name, opts)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	var bad []input.Rejection
	var batch []input.Record
	flush := func() error {
		entries := make([]checkpoint.Entry, len(batch))
		for i := range batch {
			entries[i] = checkpoint.Entry{ID: batch[i].Item.ID, Canonical: batch[i].Item.Canonical()}
		}
		conf, err := store.Conflicts(ctx, job, entries)
		if err != nil {
			return err
		}
		for i, c := range conf {
			if c {
				bad = append(bad, input.Rejection{Line: batch[i].Line, Error: fmt.Sprintf(
					"id %q is already in job %q with different content; to change a stored item use `producer replay --job %s --edit FILE`",
					entries[i].ID, job, job)})
			}
		}
		batch = batch[:0]
		return nil
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var fe *input.FileError
			if errors.Is(err, input.ErrEmpty) || errors.As(err, &fe) {
				return nil, fmt.Errorf("%s: %w: %w", name, err, ErrNothingEnqueued)
			}
			return nil, err
		}
		batch = append(batch, rec)
		if len(batch) == recordBatch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	bad = append(bad, rd.Rejections()...)
	sort.SliceStable(bad, func(a, b int) bool { return bad[a].Line < bad[b].Line })
	return bad, nil
}
