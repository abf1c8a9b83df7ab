package checkpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// View is what Walk loads of one item.
type View struct {
	ID      string
	Status  ItemStatus
	Calls   int
	Input   []byte // canonical tasks.Item JSON, when asked for
	Result  []byte // export line, when asked for and done
	Failure *Failure
	LastErr *Failure
	// Response is the provider's response kept for an item of an OpenAI
	// batch file (a Response as JSON), when asked for.
	Response []byte
}

// Want says which parts of an item Walk loads besides id and status.
type Want struct {
	Input, Result, Failure, Calls, Response bool
	// Status, when not empty, keeps only items with these statuses.
	Status []ItemStatus
}

// walkBatch is how many items Walk reads per round trip. It bounds memory
// whatever the job's size.
const walkBatch = 1000

// Walk calls fn with the job's items in input order, a batch at a time, with
// one pipelined round trip per batch. Memory stays bounded by the batch.
func (s *Store) Walk(ctx context.Context, name string, want Want, fn func([]View) error) error {
	k := keys(name)
	keep := map[ItemStatus]bool{}
	for _, st := range want.Status {
		keep[st] = true
	}
	for start := int64(0); ; start += walkBatch {
		ids, err := s.rdb.LRange(ctx, k[kOrder], start, start+walkBatch-1).Result()
		if err != nil {
			return fmt.Errorf("walk job %q: %w", name, err)
		}
		if len(ids) == 0 {
			return nil
		}
		var status, input, result, failure, calls, lasterr, response *redis.SliceCmd
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			status = p.HMGet(ctx, k[kStatus], ids...)
			if want.Input {
				input = p.HMGet(ctx, k[kInput], ids...)
			}
			if want.Result {
				result = p.HMGet(ctx, k[kResult], ids...)
			}
			if want.Failure {
				failure = p.HMGet(ctx, k[kFailure], ids...)
				lasterr = p.HMGet(ctx, k[kLastErr], ids...)
			}
			if want.Calls {
				calls = p.HMGet(ctx, k[kCalls], ids...)
			}
			if want.Response {
				response = p.HMGet(ctx, k[kResponse], ids...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("walk job %q: %w", name, err)
		}
		views := make([]View, 0, len(ids))
		for i, id := range ids {
			v := View{ID: id, Status: ItemStatus(str(status.Val()[i]))}
			if len(keep) > 0 && !keep[v.Status] {
				continue
			}
			if input != nil {
				v.Input = []byte(str(input.Val()[i]))
			}
			if result != nil {
				if r := str(result.Val()[i]); r != "" {
					v.Result = []byte(r)
				}
			}
			if failure != nil {
				if v.Failure, err = decodeFailure(failure.Val()[i]); err != nil {
					return fmt.Errorf("walk job %q: item %q: %w", name, id, err)
				}
				if v.LastErr, err = decodeFailure(lasterr.Val()[i]); err != nil {
					return fmt.Errorf("walk job %q: item %q: %w", name, id, err)
				}
			}
			if calls != nil {
				v.Calls, _ = strconv.Atoi(str(calls.Val()[i]))
			}
			if response != nil {
				if r := str(response.Val()[i]); r != "" {
					v.Response = []byte(r)
				}
			}
			views = append(views, v)
		}
		if len(views) > 0 {
			if err := fn(views); err != nil {
				return err
			}
		}
		if len(ids) < walkBatch {
			return nil
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func decodeFailure(v any) (*Failure, error) {
	s := str(v)
	if s == "" {
		return nil, nil
	}
	f := new(Failure)
	if err := json.Unmarshal([]byte(s), f); err != nil {
		return nil, fmt.Errorf("decode failure record: %w", err)
	}
	return f, nil
}

// Item returns one item's view with everything loaded.
func (s *Store) Item(ctx context.Context, name, id string) (View, error) {
	k := keys(name)
	var st, in, res, calls *redis.StringCmd
	var fail, le *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		st = p.HGet(ctx, k[kStatus], id)
		in = p.HGet(ctx, k[kInput], id)
		res = p.HGet(ctx, k[kResult], id)
		calls = p.HGet(ctx, k[kCalls], id)
		fail = p.HGet(ctx, k[kFailure], id)
		le = p.HGet(ctx, k[kLastErr], id)
		return nil
	})
	if err != nil && err != redis.Nil {
		return View{}, fmt.Errorf("load item %q of job %q: %w", id, name, err)
	}
	if st.Val() == "" {
		return View{}, fmt.Errorf("load item %q of job %q: %w", id, name, ErrItemNotFound)
	}
	v := View{ID: id, Status: ItemStatus(st.Val()), Input: []byte(in.Val())}
	if res.Val() != "" {
		v.Result = []byte(res.Val())
	}
	v.Calls, _ = strconv.Atoi(calls.Val())
	if v.Failure, err = decodeFailure(fail.Val()); err != nil {
		return View{}, err
	}
	if v.LastErr, err = decodeFailure(le.Val()); err != nil {
		return View{}, err
	}
	return v, nil
}
