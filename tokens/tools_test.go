package tokens

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/tasks"
)

func call(id, name, args string) tasks.ToolCall {
	return tasks.ToolCall{ID: id, Type: "function", Function: tasks.FunctionCall{Name: name, Arguments: args}}
}

// Tool calls count their ids, names and arguments; a tool reply counts the
// id of the call it answers.
func TestMessagesCountToolCalls(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{O200kBase, Cl100kBase} {
		c := ForEncoding(enc)
		plain := tasks.Message{Role: "assistant", Content: "let me check"}
		base := c.Messages([]tasks.Message{plain})

		withCall := plain
		withCall.ToolCalls = []tasks.ToolCall{call("call_abc123", "check_disk", `{}`)}
		want := base + perMessage + c.Text("call_abc123") + c.Text("check_disk") + c.Text(`{}`)
		if got := c.Messages([]tasks.Message{withCall}); got != want {
			t.Errorf("%s: Messages(one tool call) = %d, want %d (the call's framing, id, name and arguments)", enc, got, want)
		}
		if got := c.ToolCalls(withCall.ToolCalls); got != want-base {
			t.Errorf("%s: ToolCalls = %d, want %d", enc, got, want-base)
		}
		if got := c.ToolCalls(nil); got != 0 {
			t.Errorf("%s: ToolCalls(nil) = %d, want 0", enc, got)
		}

		// Longer arguments count more, by their own tokens.
		prev := c.Messages([]tasks.Message{withCall})
		for _, n := range []int{1, 10, 100, 1000} {
			args := fmt.Sprintf(`{"path":"/var/log","pattern":%q}`, strings.Repeat("ab*", n))
			m := plain
			m.ToolCalls = []tasks.ToolCall{call("call_abc123", "check_disk", args)}
			got := c.Messages([]tasks.Message{m})
			if want := base + perMessage + c.Text("call_abc123") + c.Text("check_disk") + c.Text(args); got != want {
				t.Errorf("%s: Messages(arguments of %d bytes) = %d, want %d", enc, len(args), got, want)
			}
			if got <= prev {
				t.Errorf("%s: Messages(arguments of %d bytes) = %d, not above %d for shorter ones", enc, len(args), got, prev)
			}
			prev = got
		}

		// Every call counts, and so do their names and ids.
		two := plain
		two.ToolCalls = []tasks.ToolCall{call("call_1", "check_disk", `{}`), call("call_2", "clean_logs", `{"days":7}`)}
		if got, want := c.Messages([]tasks.Message{two}), base+c.ToolCalls(two.ToolCalls[:1])+c.ToolCalls(two.ToolCalls[1:]); got != want {
			t.Errorf("%s: Messages(two calls) = %d, want %d", enc, got, want)
		}
		longName := plain
		longName.ToolCalls = []tasks.ToolCall{call("call_1", "check_disk_usage_of_every_mounted_volume", `{}`)}
		if c.Messages([]tasks.Message{longName}) <= c.Messages([]tasks.Message{{Role: "assistant", Content: "let me check", ToolCalls: []tasks.ToolCall{call("call_1", "x", `{}`)}}}) {
			t.Errorf("%s: a longer tool name does not count more", enc)
		}

		reply := tasks.Message{Role: "tool", Content: "83% used"}
		bare := c.Messages([]tasks.Message{reply})
		reply.ToolCallID = "call_abc123"
		if got, want := c.Messages([]tasks.Message{reply}), bare+c.Text("call_abc123"); got != want {
			t.Errorf("%s: Messages(tool reply) = %d, want %d (its tool_call_id counts)", enc, got, want)
		}
	}
}

// genTranscript returns an agent transcript made from r: instructions, a
// user turn, then groups of tool calls and their replies, with contents of
// every script, random bytes included.
func genTranscript(r *rand.Rand) []tasks.Message {
	texts := []string{"", "a", "hello world", "日本語のテキストです", "emoji 🎉🎉🎉 and ZWJ 👩‍👩‍👧", "   \n\t  ",
		strings.Repeat("¡ñé ", 50), "\x00\x01 control", "<|endoftext|> special text", `{"path":"/var","n":[1,2,3]}`,
		cjk[:200], prose(80)}
	text := func() string {
		if r.IntN(5) == 0 {
			b := make([]byte, r.IntN(64))
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			return string(b)
		}
		return texts[r.IntN(len(texts))]
	}
	msgs := []tasks.Message{{Role: "system", Content: text()}, {Role: "user", Content: text(), Name: "n"}}
	for g := range r.IntN(4) + 1 {
		calls := make([]tasks.ToolCall, r.IntN(3)+1)
		for i := range calls {
			calls[i] = call(fmt.Sprintf("call_%d_%d_%s", g, i, text()), text(), text())
		}
		msgs = append(msgs, tasks.Message{Role: "assistant", Content: text(), ToolCalls: calls})
		for _, tc := range calls {
			msgs = append(msgs, tasks.Message{Role: "tool", ToolCallID: tc.ID, Content: text()})
		}
	}
	if r.IntN(2) == 0 {
		msgs = append(msgs, tasks.Message{Role: "assistant", Content: text()})
	}
	return msgs
}

// AtMost stays an upper bound with tool calls and tool replies, for both
// encodings.
func TestAtMostBoundsToolCalls(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 200 {
		msgs := genTranscript(r)
		for _, enc := range []string{O200kBase, Cl100kBase} {
			if got, bound := ForEncoding(enc).Messages(msgs), AtMost(msgs); bound < got {
				t.Fatalf("%s, transcript %d: AtMost = %d, below the count %d: %+v", enc, i, bound, got, msgs)
			}
		}
	}
	m := []tasks.Message{{Role: "assistant", ToolCalls: []tasks.ToolCall{call("id", "name", "args")}}, {Role: "tool", ToolCallID: "id", Content: "ok"}}
	if got, want := AtMost(m), 3+(3+9+(3+2+4+4))+(3+4+2+2); got != want {
		t.Errorf("AtMost = %d, want %d: reply 3; assistant 3 + role 9 + call 3 + id 2 + name 4 + arguments 4; tool 3 + role 4 + id 2 + content 2", got, want)
	}
}

// agentChat is an agent transcript: [system, user, assistant calling a and
// b, tool a, tool b, assistant calling c, tool c].
type agentChat struct {
	sys, user, callAB, toolA, toolB, callC, toolC tasks.Message
}

func newAgentChat(toolC string) agentChat {
	return agentChat{
		sys:    tasks.Message{Role: "system", Content: "You are an operator's assistant. Use the tools."},
		user:   tasks.Message{Role: "user", Content: "The disk is full: free some space."},
		callAB: tasks.Message{Role: "assistant", ToolCalls: []tasks.ToolCall{call("call_a", "check_disk", `{"path":"/"}`), call("call_b", "list_logs", `{}`)}},
		toolA:  tasks.Message{Role: "tool", ToolCallID: "call_a", Content: "disk usage: " + prose(300)},
		toolB:  tasks.Message{Role: "tool", ToolCallID: "call_b", Content: "logs: " + prose(400)},
		callC:  tasks.Message{Role: "assistant", Content: "Cleaning up.", ToolCalls: []tasks.ToolCall{call("call_c", "clean_logs", `{"days":7}`)}},
		toolC:  tasks.Message{Role: "tool", ToolCallID: "call_c", Content: toolC},
	}
}

func (a agentChat) msgs() []tasks.Message {
	return []tasks.Message{a.sys, a.user, a.callAB, a.toolA, a.toolB, a.callC, a.toolC}
}

// checkToolGroups checks that every kept tool reply follows the assistant
// message that called it, in the same group, and that every kept call has
// all its replies: groups are kept or dropped whole.
func checkToolGroups(t *testing.T, in, out []tasks.Message) {
	t.Helper()
	var open map[string]bool // calls of the current group not yet answered
	for i, m := range out {
		switch {
		case m.Role == "tool" && m.ToolCallID != "":
			if !open[m.ToolCallID] {
				t.Fatalf("kept tool reply %d (%s) without its call: %v", i, m.ToolCallID, roles(out))
			}
			delete(open, m.ToolCallID)
		default:
			if len(open) > 0 {
				t.Fatalf("message %d: calls %v kept without their replies: %v", i, open, roles(out))
			}
			open = nil
			if len(m.ToolCalls) > 0 {
				open = map[string]bool{}
				for _, tc := range m.ToolCalls {
					open[tc.ID] = true
				}
			}
		}
	}
	if len(open) > 0 {
		t.Fatalf("calls %v kept without their replies: %v", open, roles(out))
	}
	// The last group (the last message with tool calls of the input, and
	// its replies) is always there.
	last := -1
	for i, m := range in {
		if len(m.ToolCalls) > 0 {
			last = i
		}
	}
	if last < 0 {
		return
	}
	found := false
	for _, m := range out {
		if reflect.DeepEqual(m.ToolCalls, in[last].ToolCalls) {
			found = true
		}
	}
	if !found {
		t.Fatalf("the last group's call %v was dropped: %v", in[last].ToolCalls, roles(out))
	}
}

func TestFitAgentTranscript(t *testing.T) {
	t.Parallel()
	c := ForModel("gpt-4o-mini")

	t.Run("the older group is dropped whole", func(t *testing.T) {
		t.Parallel()
		a := newAgentChat("removed 12 files, freed 3.1 GB")
		msgs := a.msgs()
		input := slices.Clone(msgs)
		res, err := c.Fit(msgs, c.Messages(msgs)-1)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(msgs, input) {
			t.Fatal("Fit modified its input")
		}
		checkFit(t, c, msgs, c.Messages(msgs)-1, res)
		if want := []tasks.Message{a.sys, a.user, a.callC, a.toolC}; !reflect.DeepEqual(res.Messages, want) {
			t.Fatalf("kept %v, want system, user, the last call and its reply", roles(res.Messages))
		}
		if !res.Truncated || res.Dropped != c.Messages([]tasks.Message{a.callAB, a.toolA, a.toolB})-perReply {
			t.Errorf("Truncated %t Dropped %d, want true and the older group's tokens", res.Truncated, res.Dropped)
		}
	})

	t.Run("a long last reply is trimmed when dropping is not enough", func(t *testing.T) {
		t.Parallel()
		a := newAgentChat("removed: " + prose(3000))
		msgs := a.msgs()
		limit := c.Messages([]tasks.Message{a.sys, a.user, a.callC}) + 500
		res, err := c.Fit(msgs, limit)
		if err != nil {
			t.Fatal(err)
		}
		checkFit(t, c, msgs, limit, res)
		checkToolGroups(t, msgs, res.Messages)
		got := res.Messages
		if len(got) != 4 || !reflect.DeepEqual(got[:3], []tasks.Message{a.sys, a.user, a.callC}) {
			t.Fatalf("kept %v, want system, user, the last call and its trimmed reply", roles(got))
		}
		beginning, ok := strings.CutSuffix(got[3].Content, TruncationMarker)
		if got[3].Role != "tool" || got[3].ToolCallID != "call_c" || !ok || beginning == "" || !strings.HasPrefix(a.toolC.Content, beginning) {
			t.Fatalf("last reply = %+v, want the beginning of tool c's reply, its call id and the marker", got[3])
		}
		if res.After < limit-10 {
			t.Errorf("After = %d, cut far more than needed for %d", res.After, limit)
		}
	})

	t.Run("an older reply is never kept without its call", func(t *testing.T) {
		t.Parallel()
		// Older replies are long, the last one short: trimming the older
		// replies could make room, but the older group goes first, whole.
		a := newAgentChat("done")
		msgs := a.msgs()
		limit := c.Messages([]tasks.Message{a.sys, a.user, a.callAB, a.toolB, a.callC, a.toolC})
		res, err := c.Fit(msgs, limit)
		if err != nil {
			t.Fatal(err)
		}
		checkFit(t, c, msgs, limit, res)
		checkToolGroups(t, msgs, res.Messages)
		if want := []tasks.Message{a.sys, a.user, a.callC, a.toolC}; !reflect.DeepEqual(res.Messages, want) {
			t.Fatalf("kept %v, want the older group dropped whole", roles(res.Messages))
		}
	})

	t.Run("every limit keeps groups whole and the last group", func(t *testing.T) {
		t.Parallel()
		for _, toolC := range []string{"done", "removed: " + prose(800), cjk} {
			a := newAgentChat(toolC)
			msgs := a.msgs()
			full := c.Messages(msgs)
			fitted, refused := 0, 0
			for limit := full; limit > 0; limit -= 1 + limit/40 {
				res, err := c.Fit(msgs, limit)
				if errors.Is(err, ErrCannotFit) {
					refused++
					continue
				}
				if err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
				fitted++
				checkFit(t, c, msgs, limit, res)
				checkToolGroups(t, msgs, res.Messages)
				for _, m := range res.Messages {
					if m.Role == "tool" && m.ToolCallID == "call_c" && m.Content != a.toolC.Content && !strings.HasSuffix(m.Content, TruncationMarker) {
						t.Fatalf("limit %d: tool c's reply changed without the marker: %q", limit, m.Content)
					}
				}
			}
			if fitted == 0 || refused == 0 {
				t.Errorf("fitted %d limits, refused %d; want both", fitted, refused)
			}
		}
	})

	t.Run("without a user message the last group is the exchange", func(t *testing.T) {
		t.Parallel()
		a := newAgentChat("removed: " + prose(3000))
		msgs := []tasks.Message{a.sys, a.callAB, a.toolA, a.toolB, a.callC, a.toolC}
		for _, limit := range []int{c.Messages(msgs) - 1, c.Messages([]tasks.Message{a.sys, a.callC}) + 300} {
			res, err := c.Fit(msgs, limit)
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			checkFit(t, c, msgs, limit, res)
			checkToolGroups(t, msgs, res.Messages)
			got := res.Messages
			if len(got) != 3 || !reflect.DeepEqual(got[:2], []tasks.Message{a.sys, a.callC}) || got[2].ToolCallID != "call_c" {
				t.Fatalf("limit %d: kept %v, want system, the last call and its reply", limit, roles(got))
			}
		}
	})
}
