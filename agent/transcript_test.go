package agent_test

import (
	"reflect"
	"testing"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/tasks"
)

func call(id, name, args string) tasks.ToolCall {
	return tasks.ToolCall{ID: id, Type: "function", Function: tasks.FunctionCall{Name: name, Arguments: args}}
}

func user(s string) tasks.Message { return tasks.Message{Role: "user", Content: s} }

func asks(calls ...tasks.ToolCall) tasks.Message {
	return tasks.Message{Role: "assistant", ToolCalls: calls}
}

func toolMsg(id, s string) tasks.Message {
	return tasks.Message{Role: "tool", ToolCallID: id, Content: s}
}

func answer(s string) tasks.Message { return tasks.Message{Role: "assistant", Content: s} }

func TestNext(t *testing.T) {
	t.Parallel()
	a := call("call_a", "check_disk", `{"host":"web-1"}`)
	b := call("call_b", "clean_logs", `{}`)
	c := call("call_c", "check_disk", `{"host":"web-2"}`)
	sys := tasks.Message{Role: "system", Content: "be brief"}
	for _, tc := range []struct {
		name    string
		msgs    []tasks.Message
		move    agent.Move
		pending []tasks.ToolCall
	}{
		{"empty", nil, agent.CallModel, nil},
		{"item only", []tasks.Message{user("disk?")}, agent.CallModel, nil},
		{"system and user", []tasks.Message{sys, user("disk?")}, agent.CallModel, nil},
		{"two calls, no reply", []tasks.Message{user("q"), asks(a, b)}, agent.RunTools, []tasks.ToolCall{a, b}},
		{"two calls, first replied", []tasks.Message{user("q"), asks(a, b), toolMsg("call_a", "1")}, agent.RunTools, []tasks.ToolCall{b}},
		{"two calls, second replied first", []tasks.Message{user("q"), asks(a, b), toolMsg("call_b", "2")}, agent.RunTools, []tasks.ToolCall{a}},
		{"two calls, both replied", []tasks.Message{user("q"), asks(a, b), toolMsg("call_a", "1"), toolMsg("call_b", "2")}, agent.CallModel, nil},
		{"two calls, replied out of order", []tasks.Message{user("q"), asks(a, b), toolMsg("call_b", "2"), toolMsg("call_a", "1")}, agent.CallModel, nil},
		{"three calls, middle replied", []tasks.Message{user("q"), asks(a, b, c), toolMsg("call_b", "2")}, agent.RunTools, []tasks.ToolCall{a, c}},
		{"reply to an unknown call", []tasks.Message{user("q"), asks(a, b), toolMsg("call_x", "?")}, agent.RunTools, []tasks.ToolCall{a, b}},
		{"final answer", []tasks.Message{user("q"), answer("all good")}, agent.Finished, nil},
		{"final answer after tools", []tasks.Message{user("q"), asks(a, b), toolMsg("call_a", "1"), toolMsg("call_b", "2"), answer("done")}, agent.Finished, nil},
		{"second round pending", []tasks.Message{user("q"), asks(a), toolMsg("call_a", "1"), asks(b, c)}, agent.RunTools, []tasks.ToolCall{b, c}},
		{"second round half replied", []tasks.Message{user("q"), asks(a), toolMsg("call_a", "1"), asks(b, c), toolMsg("call_c", "3")}, agent.RunTools, []tasks.ToolCall{b}},
		{"user after an answer", []tasks.Message{user("q"), answer("a"), user("and now?")}, agent.CallModel, nil},
		{"earlier messages carry tool calls", []tasks.Message{sys, user("q"), asks(a), toolMsg("call_a", "1")}, agent.CallModel, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			move, pending := agent.Next(tc.msgs)
			if move != tc.move {
				t.Errorf("move %d, want %d", move, tc.move)
			}
			if len(pending) != 0 || len(tc.pending) != 0 {
				if !reflect.DeepEqual(pending, tc.pending) {
					t.Errorf("pending %+v, want %+v", pending, tc.pending)
				}
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	t.Parallel()
	if got := agent.Answer(nil); got != "" {
		t.Errorf("Answer(nil) = %q", got)
	}
	msgs := []tasks.Message{user("q"), asks(call("c1", "x", "{}")), toolMsg("c1", "r"), answer("the answer")}
	if move, _ := agent.Next(msgs); move != agent.Finished {
		t.Fatalf("move %d", move)
	}
	if got := agent.Answer(msgs); got != "the answer" {
		t.Errorf("Answer = %q", got)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	type in struct {
		job, item string
		step      int
		at        int64
		id        string
	}
	key := func(i in) string { return agent.IdempotencyKey(i.job, i.item, i.step, i.at, i.id) }
	base := in{"job1", "item7", 2, 1700000000123, "call_a"}
	k := key(base)
	if len(k) != 32 {
		t.Errorf("key %q: want 32 hex digits", k)
	}
	if again := key(base); again != k {
		t.Fatalf("not stable: %q then %q", k, again)
	}
	seen := map[string]string{k: "base"}
	for _, tc := range []struct {
		name string
		in   in
	}{
		{"job", in{"job2", "item7", 2, 1700000000123, "call_a"}},
		{"item", in{"job1", "item8", 2, 1700000000123, "call_a"}},
		{"step", in{"job1", "item7", 3, 1700000000123, "call_a"}},
		{"step time", in{"job1", "item7", 2, 1700000000124, "call_a"}},
		{"call id", in{"job1", "item7", 2, 1700000000123, "call_b"}},
		{"job/item boundary", in{"job1i", "tem7", 2, 1700000000123, "call_a"}},
		{"item/step boundary", in{"job1", "item72", 0, 1700000000123, "call_a"}},
		{"empty call id", in{"job1", "item7", 2, 1700000000123, ""}},
	} {
		got := key(tc.in)
		if prev, dup := seen[got]; dup {
			t.Errorf("changing %s gives the key of %s: %q", tc.name, prev, got)
		}
		seen[got] = tc.name
	}
}
