package provider

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// What providers send when they fail differs in shape and in words. This
// file turns an error response into what classification needs, in two
// steps that are both data: errorBody reads every body shape seen in the
// field into one errorInfo, and the rules table maps status and words to a
// class. A new provider shape is a fixture in testdata/responses and, when
// its words are new, a row here; never a branch elsewhere.

// errorInfo is what an error body says, whatever its shape.
type errorInfo struct {
	message, code, typ string
	// retryDelay is Gemini's RetryInfo.retryDelay.
	retryDelay time.Duration
	// perMinute and perDay say a quota named in the body is a per-minute
	// one (a rate limit) or a per-day one (spent until tomorrow): Gemini's
	// QuotaFailure quotaId ...PerMinute... or ...PerDay....
	perMinute, perDay bool
	// promptTokens and contextLimit are a context overflow's numbers when
	// the body states them as fields (llama.cpp).
	promptTokens, contextLimit int
}

// errorBody reads an error body in any of the shapes providers use:
//
//	{"error": {"message", "type", "code", "param"}}        OpenAI, Azure, Groq, OpenRouter, LiteLLM
//	{"type": "error", "error": {"type", "message"}}        Anthropic
//	{"error": {"code": 429, "message", "status", "details": [...]}}  Gemini (also inside a JSON array)
//	{"error": {"message", "type", "n_prompt_tokens", "n_ctx"}}       llama.cpp
//	{"object": "error", "message", "type", "code"}         vLLM, Mistral
//	{"error": "text"} or {"error": "Name", "message": "text"}        Ollama, Fireworks, Node servers
//	{"detail": "text"} or {"message": "text"}               FastAPI servers, gateways
//
// It returns false when the body is not JSON it understands (HTML pages,
// plain text).
func errorBody(b []byte) (errorInfo, bool) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return errorInfo{}, false
	}
	if arr, ok := v.([]any); ok {
		if len(arr) == 0 {
			return errorInfo{}, false
		}
		v = arr[0]
	}
	top, ok := v.(map[string]any)
	if !ok {
		return errorInfo{}, false
	}
	var info errorInfo
	switch e := top["error"].(type) {
	case map[string]any:
		info.message = text(e["message"])
		info.typ = text(e["type"])
		info.code = text(e["code"])
		if s := text(e["status"]); s != "" && info.typ == "" {
			info.typ = s // Gemini: RESOURCE_EXHAUSTED, UNAVAILABLE
		}
		info.promptTokens, info.contextLimit = number(e["n_prompt_tokens"]), number(e["n_ctx"])
		details, _ := e["details"].([]any)
		for _, d := range details {
			dm, _ := d.(map[string]any)
			if dm == nil {
				continue
			}
			if rd := text(dm["retryDelay"]); rd != "" {
				if d, err := time.ParseDuration(rd); err == nil {
					info.retryDelay = d
				}
			}
			violations, _ := dm["violations"].([]any)
			for _, vi := range violations {
				vm, _ := vi.(map[string]any)
				id := strings.ToLower(text(vm["quotaId"]) + text(vm["quotaMetric"]))
				info.perMinute = info.perMinute || strings.Contains(id, "perminute")
				info.perDay = info.perDay || strings.Contains(id, "perday")
			}
		}
	case string:
		info.message = e
		if m := text(top["message"]); m != "" {
			info.message = e + ": " + m
		}
	}
	if info.message == "" {
		info.message = text(top["message"])
		if info.typ == "" {
			info.typ = text(top["type"])
		}
		if info.code == "" {
			info.code = text(top["code"])
		}
	}
	if info.message == "" {
		info.message = detail(top["detail"])
	}
	if info.message == "" && info.code == "" && info.typ == "" {
		return errorInfo{}, false
	}
	return info, true
}

// text renders a JSON value as the text a reason shows: strings as they
// are, numbers without exponent, anything else as JSON.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// detail reads FastAPI's "detail": a string, or a list of validation
// errors whose "msg" and "loc" are kept and whose echoed "input" is not (a
// request's own words must not decide its class).
func detail(v any) string {
	list, ok := v.([]any)
	if !ok {
		return text(v)
	}
	var parts []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		if m == nil {
			continue
		}
		p := text(m["msg"])
		if loc := text(m["loc"]); loc != "" {
			p = loc + ": " + p
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func number(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// rule is one row of the classification table: a status range and words
// (in the code, type or message, lowercased) that together decide a class.
type rule struct {
	// minStatus and maxStatus bound the HTTP status (inclusive).
	minStatus, maxStatus int
	// any holds the words of which one must appear; empty matches all.
	any []string
	// unless, when set and matching, makes the row not apply.
	unless *regexp.Regexp
	// match, when set, must also hold for the lowercased words.
	match func(words string) bool
	class Class
	// note, when set, is put before the provider's message in the reason.
	note string
}

// rateWords mark a 429 as a rate limit even when its text also speaks of
// quota or billing (OpenAI's low tiers, Gemini's per-minute free tier,
// Fireworks' "Too Many Requests"). Whole words only: "tpm" inside an
// account id is not a tokens-per-minute limit.
var rateWords = regexp.MustCompile(`\brate[ _-]?limit|\b(rpm|tpm)\b|\bper min(ute)?\b|\b(requests|tokens) per (min(ute)?|sec(ond)?)\b|` +
	`\btry again in\b|\bretry (after|in)\b|\bretrydelay\b|\bslow down\b|\btoo many requests\b`)

// quotaWords say an account's money or allowance is spent: calling again
// will not help until a person acts.
var quotaWords = []string{
	"insufficient_quota", "exceeded your current quota", "billing", "insufficient balance",
	"insufficient credits", "credit balance", "more credits", "out of credits", "payment required",
	"specified api usage limits", "spend limit",
}

// overflowWords are a prompt over the model's context, in each provider's
// words (OpenAI, vLLM, Anthropic, llama.cpp, TGI, DeepSeek).
var overflowWords = []string{
	"context_length_exceeded", "exceed_context_size", "maximum context length", "context window",
	"context length", "prompt is too long", "exceeds the available context size", "exceed context limit",
	"input is too long", "too many input tokens", "reduce the length of the messages",
	"`inputs` tokens + `max_new_tokens` must be",
	// Old vLLM: the prompt left no room, so the computed max_tokens is negative.
	"max_tokens must be at least 1, got -",
}

// overTPM matches a rate-limit message whose request alone is larger than
// the whole tokens-per-minute limit (Groq: "(TPM): Limit 7000, Used 0,
// Requested ~12903"): no wait makes it fit.
var overTPMRE = regexp.MustCompile(`\(tpm\): limit (\d+),.*?requested ~?(\d+)`)

func overTPM(words string) bool {
	m := overTPMRE.FindStringSubmatch(words)
	if m == nil {
		return false
	}
	limit, _ := strconv.Atoi(m[1])
	requested, _ := strconv.Atoi(m[2])
	return limit > 0 && requested > limit
}

// rules are tried in order; the first that matches decides. Statuses not
// covered end as the table's last rows say.
var rules = []rule{
	// A request larger than the whole tokens-per-minute limit can never
	// succeed, whatever the wait (OpenAI's 429 and Groq's 413 "Request too
	// large", Groq's 429 whose Requested is over its Limit).
	{minStatus: 413, maxStatus: 429, any: []string{"request too large"}, class: BadRequest, note: overTPMNote},
	{minStatus: 429, maxStatus: 429, match: overTPM, class: BadRequest, note: overTPMNote},
	// The prompt is over the model's context, in every provider's words;
	// some servers say so with a 500 (llama.cpp's first release, vLLM
	// behind KServe), which no retry would cure.
	{minStatus: 400, maxStatus: 428, any: overflowWords, class: ContextOverflow},
	{minStatus: 500, maxStatus: 500, any: []string{"exceed_context_size", "maximum context length", "context_length_exceeded"}, class: ContextOverflow},
	{minStatus: 400, maxStatus: 428, any: []string{
		"content_filter", "content_policy_violation", "content management policy", "responsibleaipolicyviolation",
		"flagged by our moderation", "safety system", "flagged as potentially violating", "violating our usage policy",
	}, class: ContentFilter},
	// A spent quota or balance fails now; a rate limit that only mentions
	// quota or billing does not.
	{minStatus: 429, maxStatus: 429, any: []string{"insufficient_quota"}, class: Quota},
	// Gemini's per-day quota is spent until tomorrow, whatever wait it
	// names.
	{minStatus: 429, maxStatus: 429, any: []string{"per day quota"}, class: Quota},
	{minStatus: 429, maxStatus: 429, any: quotaWords, unless: rateWords, class: Quota},
	{minStatus: 429, maxStatus: 429, class: RateLimited},
	{minStatus: 402, maxStatus: 402, class: Quota},
	// Anthropic's spent usage limit and credit balance come as a 400.
	{minStatus: 400, maxStatus: 403, any: quotaWords, unless: rateWords, class: Quota},
	{minStatus: 529, maxStatus: 529, class: Overloaded},
	{minStatus: 500, maxStatus: 599, class: ServerError},
	// Gemini says a key is wrong with a 400.
	{minStatus: 400, maxStatus: 400, any: []string{"api_key_invalid", "api key not valid"}, class: Auth},
	{minStatus: 401, maxStatus: 401, class: Auth},
	{minStatus: 403, maxStatus: 403, class: Auth},
	{minStatus: 404, maxStatus: 404, class: NotFound},
	{minStatus: 400, maxStatus: 499, class: BadRequest},
}

const overTPMNote = "the request alone is over the provider's tokens-per-minute limit and can never succeed; shrink it or raise the limit: "

// classifyResponse applies the rules to an error response.
func classifyResponse(status int, info errorInfo) (Class, string) {
	words := strings.ToLower(info.code + " " + info.typ + " " + info.message)
	switch {
	case info.perDay:
		words += " per day quota"
	case info.perMinute:
		words += " per minute"
	}
	if info.retryDelay > 0 && !info.perDay {
		words += " retrydelay"
	}
	for _, r := range rules {
		if status < r.minStatus || status > r.maxStatus {
			continue
		}
		if len(r.any) > 0 && !containsAny(words, r.any) {
			continue
		}
		if r.unless != nil && r.unless.MatchString(words) {
			continue
		}
		if r.match != nil && !r.match(words) {
			continue
		}
		return r.class, r.note
	}
	if status >= 200 && status < 300 {
		return UpstreamInvalid, ""
	}
	return BadRequest, ""
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// maxHint bounds a wait inferred from a message or from reset headers: a
// hint, not a promise. A token bucket that refills completely in "6m0s"
// must not park an item, or the fleet, for six minutes.
const maxHint = time.Minute

var (
	// "Please try again in 20s", "in 7m54.72s", "in 6ms", "in 1m30s".
	hintDurationRE = regexp.MustCompile(`(?i)(?:try again|retry) in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)\b`)
	// "Try again in 50 seconds", "Retry after 5 seconds", "retry after 86400 seconds".
	hintUnitsRE = regexp.MustCompile(`(?i)(?:try again|retry)(?: in| after)? (\d+(?:\.\d+)?) ?(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?)\b`)
)

// hintFromText reads a wait stated in words.
func hintFromText(msg string) time.Duration {
	if m := hintDurationRE.FindStringSubmatch(msg); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			return d
		}
	}
	if m := hintUnitsRE.FindStringSubmatch(msg); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0
		}
		unit := time.Second
		switch u := strings.ToLower(m[2]); {
		case strings.HasPrefix(u, "ms"), strings.HasPrefix(u, "milli"):
			unit = time.Millisecond
		case strings.HasPrefix(u, "min"):
			unit = time.Minute
		}
		if f*float64(unit) > float64(24*time.Hour) {
			return 24 * time.Hour
		}
		return time.Duration(f * float64(unit))
	}
	return 0
}

var (
	// OpenAI, vLLM: "maximum context length is 8192 tokens".
	maxContextRE = regexp.MustCompile(`maximum context length is (\d+) tokens`)
	// OpenAI: "your messages resulted in 9000 tokens"; vLLM: "you requested
	// 5000 tokens (4000 in the messages, 1000 in the completion)".
	requestedRE = regexp.MustCompile(`(?:resulted in|requested) (\d+) tokens(?: \((\d+) in the messages, (\d+) in the completion\))?`)
	// Anthropic: "prompt is too long: 208000 tokens > 200000 maximum".
	tooLongRE = regexp.MustCompile(`prompt is too long: (\d+) tokens > (\d+) maximum`)
	// Anthropic: "input length and max_tokens exceed context limit: 198981
	// + 21333 > 200000".
	sumOverRE = regexp.MustCompile(`exceed context limit: (\d+) \+ (\d+) > (\d+)`)
	// TGI: "must be <= 2048. Given: 1887 `inputs` tokens and 1024
	// `max_new_tokens`".
	tgiRE = regexp.MustCompile("must be <= (\\d+)\\. Given: (\\d+) `inputs` tokens and (\\d+) `max_new_tokens`")
)

// overflowNumbers reads what a context overflow says of the prompt's size
// and the model's limit, in the provider's own tokens (0 when unsaid).
func overflowNumbers(msg string, info errorInfo) (prompt, completion, limit int) {
	if m := tooLongRE.FindStringSubmatch(msg); m != nil {
		prompt, _ = strconv.Atoi(m[1])
		limit, _ = strconv.Atoi(m[2])
		return prompt, 0, limit
	}
	if m := sumOverRE.FindStringSubmatch(msg); m != nil {
		prompt, _ = strconv.Atoi(m[1])
		completion, _ = strconv.Atoi(m[2])
		limit, _ = strconv.Atoi(m[3])
		return prompt, completion, limit
	}
	if m := tgiRE.FindStringSubmatch(msg); m != nil {
		limit, _ = strconv.Atoi(m[1])
		prompt, _ = strconv.Atoi(m[2])
		completion, _ = strconv.Atoi(m[3])
		return prompt, completion, limit
	}
	if m := maxContextRE.FindStringSubmatch(msg); m != nil {
		limit, _ = strconv.Atoi(m[1])
	}
	if m := requestedRE.FindStringSubmatch(msg); m != nil {
		prompt, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			prompt, _ = strconv.Atoi(m[2])
			completion, _ = strconv.Atoi(m[3])
		}
	}
	if info.promptTokens > 0 && info.contextLimit > 0 {
		prompt, limit = info.promptTokens, info.contextLimit
	}
	return prompt, completion, limit
}
