package tokens

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/tasks"
)

// TruncationMarker ends a message Fit trimmed, so the model (and whoever
// reads the prompt later) knows the text was cut there.
const TruncationMarker = " [truncated]"

// ErrCannotFit means the messages exceed the limit even after dropping and
// trimming everything Fit may drop or trim.
var ErrCannotFit = errors.New("messages cannot fit the token limit")

// Truncate returns the longest beginning of s that is at most limit tokens,
// and how many tokens were cut (s's count minus the beginning's). The
// beginning is s's first limit tokens, shortened to whole characters when
// the last token ends inside a multi-byte character (a token can hold part
// of a CJK character or an emoji), so it is always valid UTF-8 and may count
// up to 3 tokens less than limit (one character split over 4 tokens).
// Invalid UTF-8 in s is replaced by U+FFFD.
func (c Counter) Truncate(s string, limit int) (string, int) {
	s = validUTF8(s)
	total := c.Text(s)
	if total <= limit {
		return s, 0
	}
	limit = max(limit, 0)
	prefix, n := c.longestPrefix(s, c.firstTokens(s, limit, total), limit, limit, c.Text)
	return prefix, total - n
}

// FitResult is what Fit did.
type FitResult struct {
	// Messages are the messages to send: the input when it fits, else the
	// kept messages, in their original order, some maybe trimmed.
	Messages []tasks.Message
	// Truncated is true when a message was dropped or trimmed.
	Truncated bool
	// Dropped is how many prompt tokens were removed: Before - After.
	Dropped int
	// Before and After are the prompt tokens (as Messages counts them) of
	// the input and of Messages.
	Before, After int
}

// Fit makes msgs fit within limit prompt tokens, counted like Messages,
// chat overhead included. Callers pass the model's context window minus the
// tokens reserved for the reply. See the package doc for the recipe.
//
// Neither msgs nor its messages are modified; the result's slice is always
// a new one. When the messages cannot fit, Fit returns an error wrapping
// ErrCannotFit that gives both counts, with a FitResult whose Before is the
// input's count and After the fewest tokens Fit could reach, and no
// Messages.
func (c Counter) Fit(msgs []tasks.Message, limit int) (FitResult, error) {
	costs := make([]int, len(msgs))
	contents := make([]int, len(msgs)) // content tokens of each message
	total := perReply
	for i, m := range msgs {
		contents[i] = c.Text(m.Content)
		costs[i] = c.overhead(m) + contents[i]
		total += costs[i]
	}
	before := total
	if total <= limit {
		return FitResult{Messages: slices.Clone(msgs), Before: total, After: total}, nil
	}

	// Drop the oldest messages that are neither instructions nor part of
	// the last exchange, until the rest fits.
	// A model's tool calls and the tool replies that follow them are one
	// group, dropped whole or kept whole (a provider refuses a reply
	// without its call); every group but the last may go, oldest first.
	start := lastExchange(msgs)
	lastGroup := -1
	for i, m := range msgs {
		if len(m.ToolCalls) > 0 {
			lastGroup = i
		}
	}
	out := make([]tasks.Message, 0, len(msgs))
	var outCosts, outContents []int
	inGroup, dropGroup := false, false
	for i, m := range msgs {
		if m.Role == "tool" && inGroup {
			if dropGroup {
				total -= costs[i]
				continue
			}
		} else {
			head := len(m.ToolCalls) > 0
			inGroup, dropGroup = head, false
			droppable := (i < start && !isInstruction(m.Role)) || (head && i != lastGroup)
			if total > limit && droppable {
				dropGroup = head
				total -= costs[i]
				continue
			}
		}
		out = append(out, m)
		outCosts = append(outCosts, costs[i])
		outContents = append(outContents, contents[i])
	}

	// Trim user messages and tool replies, the longest first, until the
	// rest fits.
	done := make([]bool, len(out)) // trimmed, or not worth trimming
	for total > limit {
		j := longestUser(out, outContents, done)
		if j < 0 {
			break
		}
		done[j] = true
		m := out[j]
		other := total - outCosts[j]
		budget := limit - other - c.overhead(m) // for content and marker
		content := validUTF8(m.Content)
		k := min(max(budget-c.Text(TruncationMarker), 0), outContents[j])
		prefix, _ := c.longestPrefix(content, c.firstTokens(content, k, outContents[j]), k, budget,
			func(p string) int { return c.Text(p + TruncationMarker) })
		m.Content = prefix + TruncationMarker
		if cost := c.message(m); cost < outCosts[j] {
			out[j], outCosts[j] = m, cost
			total = other + cost
		}
	}
	if total > limit {
		return FitResult{Before: before, After: total},
			fmt.Errorf("%w: %d prompt tokens, still %d after dropping and trimming all it may, limit %d", ErrCannotFit, before, total, limit)
	}
	return FitResult{Messages: out, Truncated: true, Dropped: before - total, Before: before, After: total}, nil
}

// isInstruction reports whether a role's messages are instructions that
// Fit always keeps.
func isInstruction(role string) bool {
	return role == "system" || role == "developer"
}

// lastExchange returns the index where the last exchange starts: the last
// run of user messages (instructions between them do not break the run;
// they are kept anyway) followed by everything after it. Without user
// messages it is the last message that is not an instruction, or, when
// that is a tool reply, the message with the call it answers.
func lastExchange(msgs []tasks.Message) int {
	i := len(msgs) - 1
	for i >= 0 && msgs[i].Role != "user" {
		i--
	}
	if i < 0 {
		for i = len(msgs) - 1; i >= 0 && isInstruction(msgs[i].Role); i-- {
		}
		// A tool reply is kept with the call it answers: the exchange
		// starts at that call, else the call, older than the exchange,
		// would be dropped and its replies with it.
		j := i
		for j > 0 && msgs[j].Role == "tool" {
			j--
		}
		if j >= 0 && j < i && len(msgs[j].ToolCalls) > 0 {
			i = j
		}
		return max(i, 0)
	}
	for i > 0 && (msgs[i-1].Role == "user" || isInstruction(msgs[i-1].Role)) {
		i--
	}
	return i
}

// longestUser returns the index of the user message or tool reply with the
// most content tokens among those not done, the earliest on a tie, or -1.
func longestUser(msgs []tasks.Message, contents []int, done []bool) int {
	best := -1
	for i, m := range msgs {
		if (m.Role == "user" || (m.Role == "tool" && m.ToolCallID != "")) && !done[i] && (best < 0 || contents[i] > contents[best]) {
			best = i
		}
	}
	return best
}

// split returns the byte offset where each token of s ends. s must be
// valid UTF-8: the tokenizer works on characters, so its tokens then
// concatenate back to s exactly.
func (c Counter) split(s string) []int {
	if s == "" {
		return nil
	}
	_, toks, err := c.codec.Encode(s)
	if err != nil {
		// As in Text: estimate 4 bytes a token rather than fail.
		ends := make([]int, 0, (len(s)+3)/4)
		for end := 4; ; end += 4 {
			ends = append(ends, min(end, len(s)))
			if end >= len(s) {
				return ends
			}
		}
	}
	ends := make([]int, len(toks))
	end := 0
	for i, t := range toks {
		end += len(t)
		ends[i] = end
	}
	return ends
}

// firstTokens returns where the first tokens of s, which has n tokens, end:
// at least k of them. Encoding (which keeps every token) costs more than
// counting, so it encodes only a beginning of s a little longer than k
// tokens should need, growing it if that was too short. Tokens well before
// the cut are the same as in s; a few at the cut may differ, which is why
// the cut is made some tokens past k and the result is counted again.
func (c Counter) firstTokens(s string, k, n int) []int {
	const margin = 16
	if k+margin >= n {
		return c.split(s)
	}
	for end := int(int64(len(s))*int64(k+margin)/int64(n)) + 64; end < len(s); end *= 2 {
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		if ends := c.split(s[:end]); len(ends) >= k+margin {
			return ends
		}
	}
	return c.split(s)
}

// longestPrefix returns the longest beginning of s made of at most its
// first k tokens (ends as split returns them), cut back to whole
// characters, for which count is within budget, and that count. A
// beginning may tokenize differently once cut or joined to a suffix, so k
// shrinks by the excess until it fits; with k 0 the beginning is "", fit
// or not.
func (c Counter) longestPrefix(s string, ends []int, k, budget int, count func(string) int) (string, int) {
	k = min(k, len(ends))
	for {
		prefix := ""
		if k > 0 {
			end := ends[k-1]
			for end > 0 && end < len(s) && !utf8.RuneStart(s[end]) {
				end--
			}
			prefix = s[:end]
		}
		n := count(prefix)
		if n <= budget || k == 0 {
			return prefix, n
		}
		k = max(k-(n-budget), 0)
	}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
