package tokens

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/tasks"
)

// prose returns about n tokens of English-like text, the same on every call.
func prose(n int) string {
	words := strings.Fields(`the a of and to in is was for on that with as by at from it this be are
		report market data model system user value time year city river north south company price
		growth team plan result table figure order item batch worker queue token limit budget cost`)
	var b strings.Builder
	b.Grow(n * 6)
	seed := uint32(2463534242)
	for i := 0; i < n*12/13; i++ {
		seed ^= seed << 13
		seed ^= seed >> 17
		seed ^= seed << 5
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[seed%uint32(len(words))])
		if i%12 == 11 {
			b.WriteByte('.')
		}
	}
	return b.String()
}

// cjk is text whose tokens often end inside a character: Japanese, Chinese,
// Korean and emoji, several bytes a character.
var cjk = strings.Repeat("日本語のテキストを処理します。我们正在测试分词器。토크나이저 테스트 🌍🚀🧪👩‍💻 ", 40)

func TestTruncate(t *testing.T) {
	t.Parallel()
	c := ForModel("gpt-4o-mini")
	tests := []struct {
		name    string
		s       string
		limit   int
		want    string
		wantCut int
	}{
		{"fits", "hello world", 2, "hello world", 0},
		{"fits with room", "hello world", 100, "hello world", 0},
		{"empty", "", 0, "", 0},
		{"first token", "hello world", 1, "hello", 1},
		{"nothing kept", "hello world", 0, "", 2},
		{"negative limit keeps nothing", "hello world", -3, "", 2},
		{"sentence", "The quick brown fox jumps over the lazy dog.", 4, "The quick brown fox", 6},
	}
	for _, tt := range tests {
		got, cut := c.Truncate(tt.s, tt.limit)
		if got != tt.want || cut != tt.wantCut {
			t.Errorf("%s: Truncate(%q, %d) = %q, %d; want %q, %d", tt.name, tt.s, tt.limit, got, cut, tt.want, tt.wantCut)
		}
	}

	t.Run("multi-byte text stays valid UTF-8 at every cut", func(t *testing.T) {
		t.Parallel()
		for _, enc := range []string{O200kBase, Cl100kBase} {
			c := ForEncoding(enc)
			s := cjk[:len(cjk)/8]
			total := c.Text(s)
			for limit := range total + 2 {
				got, cut := c.Truncate(s, limit)
				n := c.Text(got)
				switch {
				case !utf8.ValidString(got):
					t.Fatalf("%s: Truncate(cjk, %d) = %q: invalid UTF-8", enc, limit, got)
				case !strings.HasPrefix(s, got):
					t.Fatalf("%s: Truncate(cjk, %d) = %q: not a beginning of the text", enc, limit, got)
				case n > limit:
					t.Fatalf("%s: Truncate(cjk, %d) has %d tokens", enc, limit, n)
				case cut != total-n:
					t.Fatalf("%s: Truncate(cjk, %d) cut %d, want %d - %d", enc, limit, cut, total, n)
				case n < min(limit, total)-3:
					t.Fatalf("%s: Truncate(cjk, %d) kept only %d tokens", enc, limit, n)
				}
			}
		}
	})
	t.Run("invalid UTF-8 is replaced", func(t *testing.T) {
		t.Parallel()
		got, _ := c.Truncate("caf\xe9 au lait, s'il vous pla\xeet", 3)
		if !utf8.ValidString(got) || !strings.HasPrefix(got, "caf\uFFFD") {
			t.Errorf("Truncate = %q, want a valid beginning with U+FFFD", got)
		}
	})
	t.Run("a long text", func(t *testing.T) {
		t.Parallel()
		s := prose(20000)
		total := c.Text(s)
		got, cut := c.Truncate(s, 1000)
		if n := c.Text(got); n != 1000 || cut != total-1000 || !strings.HasPrefix(s, got) {
			t.Errorf("Truncate(%d tokens, 1000) kept %d tokens, cut %d", total, n, cut)
		}
	})
}

func TestFit(t *testing.T) {
	t.Parallel()
	c := ForModel("gpt-4o-mini")
	sys := tasks.Message{Role: "system", Content: "You are a careful analyst. Answer in one paragraph."}
	msg := func(role string, tokens int) tasks.Message {
		return tasks.Message{Role: role, Content: fmt.Sprintf("%s %d: %s", role, tokens, prose(tokens))}
	}
	u1, a1, u2, a2, u3 := msg("user", 200), msg("assistant", 150), msg("user", 120), msg("assistant", 80), msg("user", 60)
	chat := []tasks.Message{sys, u1, a1, u2, a2, u3}
	long := msg("user", 5000)
	instructions := tasks.Message{Role: "user", Content: "Summarize the following report in three bullet points."}
	size := c.Messages

	// trimmed is what a user sees of a message Fit trimmed: its beginning
	// and the marker.
	type trimmed struct{ tasks.Message }

	tests := []struct {
		name  string
		msgs  []tasks.Message
		limit int
		// want lists the messages expected, in order: a tasks.Message
		// kept as is, or a trimmed one.
		want          []any
		wantTruncated bool
	}{
		{"fits: unchanged", chat, size(chat), []any{sys, u1, a1, u2, a2, u3}, false},
		{"no messages", nil, 3, nil, false},
		{"oldest dropped first", chat, size(chat) - 1,
			[]any{sys, a1, u2, a2, u3}, true},
		{"dropped one at a time until it fits", chat, size([]tasks.Message{sys, u2, a2, u3}) + 10,
			[]any{sys, u2, a2, u3}, true},
		{"every system message kept, in place", []tasks.Message{sys, u1, a1, {Role: "developer", Content: "Be brief."}, u2, a2, sys, u3},
			size([]tasks.Message{sys, {Role: "developer", Content: "Be brief."}, sys, u3}),
			[]any{sys, tasks.Message{Role: "developer", Content: "Be brief."}, sys, u3}, true},
		{"last exchange kept: the last user message and the replies after it",
			[]tasks.Message{sys, u1, a1, u2, a2, {Role: "tool", Content: "42"}},
			size([]tasks.Message{sys, u2, a2, {Role: "tool", Content: "42"}}),
			[]any{sys, u2, a2, tasks.Message{Role: "tool", Content: "42"}}, true},
		{"last user message trimmed after dropping the rest",
			[]tasks.Message{sys, u1, a1, long}, 1000,
			[]any{sys, trimmed{long}}, true},
		{"a turn split in two user messages is one exchange: instructions kept, document trimmed",
			[]tasks.Message{sys, u1, a1, instructions, long}, 1000,
			[]any{sys, instructions, trimmed{long}}, true},
		{"several user messages trimmed when one is not enough",
			[]tasks.Message{sys, msg("user", 300), msg("user", 400)}, size([]tasks.Message{sys, {Role: "user"}, {Role: "user"}}) + 150,
			[]any{sys, trimmed{msg("user", 300)}, tasks.Message{Role: "user", Content: TruncationMarker}}, true},
		{"named message keeps its name",
			[]tasks.Message{sys, {Role: "user", Name: "alice", Content: long.Content}}, 500,
			[]any{sys, trimmed{tasks.Message{Role: "user", Name: "alice", Content: long.Content}}}, true},
		{"no user message: the last message is the exchange",
			[]tasks.Message{sys, a1, a2}, size([]tasks.Message{sys, a2}),
			[]any{sys, a2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			input := slices.Clone(tt.msgs)
			res, err := c.Fit(tt.msgs, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tt.msgs, input) {
				t.Fatal("Fit modified its input")
			}
			checkFit(t, c, tt.msgs, tt.limit, res)
			if res.Truncated != tt.wantTruncated {
				t.Errorf("Truncated = %t, want %t", res.Truncated, tt.wantTruncated)
			}
			if len(res.Messages) != len(tt.want) {
				t.Fatalf("kept %d messages %v, want %d", len(res.Messages), roles(res.Messages), len(tt.want))
			}
			for i, w := range tt.want {
				got := res.Messages[i]
				switch w := w.(type) {
				case tasks.Message:
					if !reflect.DeepEqual(got, w) {
						t.Errorf("message %d = %s %.40q, want %s %.40q", i, got.Role, got.Content, w.Role, w.Content)
					}
				case trimmed:
					beginning, ok := strings.CutSuffix(got.Content, TruncationMarker)
					if got.Role != w.Role || got.Name != w.Name || !ok || beginning == "" || !strings.HasPrefix(w.Content, beginning) {
						t.Errorf("message %d = %s %q, want the beginning of %s %.40q and the marker", i, got.Role, got.Content, w.Role, w.Content)
					}
				}
			}
		})
	}

	t.Run("the result is a copy", func(t *testing.T) {
		t.Parallel()
		msgs := []tasks.Message{sys, u3}
		res, err := c.Fit(msgs, 1000)
		if err != nil {
			t.Fatal(err)
		}
		res.Messages[0].Content = "changed"
		if !reflect.DeepEqual(msgs[0], sys) {
			t.Error("changing the result changed the input")
		}
	})

	t.Run("multi-byte text trimmed by tokens stays valid UTF-8", func(t *testing.T) {
		t.Parallel()
		for _, enc := range []string{O200kBase, Cl100kBase} {
			c := ForEncoding(enc)
			msgs := []tasks.Message{sys, {Role: "user", Content: cjk}}
			for _, limit := range []int{60, 61, 62, 63, 64, 65, 100, 177, 250, 333} {
				res, err := c.Fit(msgs, limit)
				if err != nil {
					t.Fatalf("%s, limit %d: %v", enc, limit, err)
				}
				checkFit(t, c, msgs, limit, res)
				got := res.Messages[1].Content
				beginning, ok := strings.CutSuffix(got, TruncationMarker)
				if !utf8.ValidString(got) || !ok || !strings.HasPrefix(cjk, beginning) {
					t.Fatalf("%s, limit %d: content %q, want a valid beginning and the marker", enc, limit, got)
				}
				if res.After < limit-3 {
					t.Errorf("%s, limit %d: After = %d, cut more than needed", enc, limit, res.After)
				}
			}
		}
	})

	t.Run("a 100k-token prompt trimmed to 8k", func(t *testing.T) {
		t.Parallel()
		doc := tasks.Message{Role: "user", Content: prose(100_000)}
		msgs := []tasks.Message{sys, instructions, doc}
		res, err := c.Fit(msgs, 8000)
		if err != nil {
			t.Fatal(err)
		}
		checkFit(t, c, msgs, 8000, res)
		if res.Before < 100_000 || res.After < 7990 || !res.Truncated {
			t.Errorf("Before %d, After %d, Truncated %t; want over 100000, just under 8000, true", res.Before, res.After, res.Truncated)
		}
		if got := res.Messages; len(got) != 3 || !reflect.DeepEqual(got[1], instructions) || !strings.HasSuffix(got[2].Content, TruncationMarker) {
			t.Errorf("kept %v, want the system message, the instructions and the trimmed document", roles(got))
		}
	})

	cannot := []struct {
		name  string
		msgs  []tasks.Message
		limit int
	}{
		{"system message alone over the limit", []tasks.Message{msg("system", 500), u3}, 300},
		{"a reply in the last exchange cannot be trimmed", []tasks.Message{sys, u3, msg("tool", 2000)}, 1000},
		{"nothing but instructions", []tasks.Message{msg("system", 500)}, 100},
		{"zero limit", []tasks.Message{sys, u3}, 0},
		{"negative limit", []tasks.Message{sys, u3}, -1},
	}
	for _, tt := range cannot {
		t.Run("cannot fit: "+tt.name, func(t *testing.T) {
			t.Parallel()
			input := slices.Clone(tt.msgs)
			res, err := c.Fit(tt.msgs, tt.limit)
			if !errors.Is(err, ErrCannotFit) {
				t.Fatalf("Fit = %v, %v; want ErrCannotFit", res, err)
			}
			if !reflect.DeepEqual(tt.msgs, input) {
				t.Fatal("Fit modified its input")
			}
			if res.Messages != nil || res.Before != size(tt.msgs) || res.After <= tt.limit {
				t.Errorf("result %+v, want no messages, Before the input's count, After over the limit", res)
			}
			for _, n := range []int{res.Before, res.After, tt.limit} {
				if !strings.Contains(err.Error(), fmt.Sprint(n)) {
					t.Errorf("error %q does not give %d", err, n)
				}
			}
		})
	}
}

// checkFit checks what holds for every fitted result: it fits, its counts
// are right, the instructions and the last user message are there, and
// the kept messages are in their original order.
func checkFit(t *testing.T, c Counter, in []tasks.Message, limit int, res FitResult) {
	t.Helper()
	if after := c.Messages(res.Messages); res.After != after || after > limit {
		t.Errorf("After = %d, recounted %d, limit %d", res.After, after, limit)
	}
	if before := c.Messages(in); res.Before != before || res.Dropped != res.Before-res.After {
		t.Errorf("Before = %d (counted %d), After %d, Dropped %d", res.Before, before, res.After, res.Dropped)
	}
	j := 0 // next input message a kept one may be
	for i, m := range res.Messages {
		for j < len(in) && !(in[j].Role == m.Role && in[j].Name == m.Name &&
			(in[j].Content == m.Content || strings.HasPrefix(in[j].Content, strings.TrimSuffix(m.Content, TruncationMarker)))) {
			if isInstruction(in[j].Role) {
				t.Errorf("instruction %d (%s) dropped", j, in[j].Role)
			}
			j++
		}
		if j == len(in) {
			t.Fatalf("kept message %d (%s) is not in the input in order", i, m.Role)
		}
		j++
	}
	for ; j < len(in); j++ {
		if isInstruction(in[j].Role) || in[j].Role == "user" {
			t.Errorf("message %d (%s) at the end dropped", j, in[j].Role)
		}
	}
}

func roles(msgs []tasks.Message) []string {
	var r []string
	for _, m := range msgs {
		r = append(r, m.Role)
	}
	return r
}

// TestTruncateUneven cuts texts whose beginning is much denser or sparser
// than their average, so the part Truncate encodes first is too long or too
// short.
func TestTruncateUneven(t *testing.T) {
	t.Parallel()
	c := ForModel("gpt-4o-mini")
	for name, s := range map[string]string{
		"sparse beginning": prose(2000) + strings.Repeat("🧪", 6000),
		"dense beginning":  strings.Repeat("🧪", 6000) + prose(2000),
	} {
		total := c.Text(s)
		for _, limit := range []int{0, 1, 1500, 2500, total - 20, total - 1} {
			got, cut := c.Truncate(s, limit)
			if n := c.Text(got); n > limit || n < limit-3 || cut != total-n || !strings.HasPrefix(s, got) {
				t.Errorf("%s: Truncate(%d tokens, %d) kept %d tokens, cut %d", name, total, limit, n, cut)
			}
		}
	}
}

func TestLongestPrefixShrinks(t *testing.T) {
	t.Parallel()
	c := ForModel("gpt-4o-mini")
	s := prose(100)
	ends := c.split(s)
	// A count that disagrees with the cut: a beginning joined to a suffix
	// can count more than its tokens.
	count := func(p string) int { return c.Text(p) + 7 }
	got, n := c.longestPrefix(s, ends, 50, 50, count)
	if n > 50 || n < 49 || c.Text(got) != n-7 {
		t.Errorf("longestPrefix = %d tokens (counted %d), want the longest within 50", c.Text(got), n)
	}
}
