package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

const maxBodyBytes = 16 << 20

// chatRequest is the part of OpenAI's chat completion request the simulator
// reads; other fields (logprobs, ...) are accepted and ignored.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []tasks.Message `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                json.RawMessage `json:"stop"`
	Seed                *int64          `json:"seed"`
	ResponseFormat      *responseFormat `json:"response_format"`
	Stream              bool            `json:"stream"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
}

// responseFormat is a request's response_format. JSONSchema is kept as
// sent: invalid checks its shape, and a json_schema answer is generated
// from its schema (see schemaReply).
type responseFormat struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema"`
}

// schema returns the json_schema format's schema, or nil when it has none.
// invalid has checked that json_schema is an object and schema, when set,
// one too.
func (f *responseFormat) schema() json.RawMessage {
	var js struct {
		Schema json.RawMessage `json:"schema"`
	}
	if json.Unmarshal(f.JSONSchema, &js) != nil || !present(js.Schema) {
		return nil
	}
	return js.Schema
}

// call is a parsed chat completion request.
type call struct {
	req     chatRequest
	id      string
	created int64
	key     string // Key of the last user message
	last    string // the last user message's content
	counter tokens.Counter
	prompt  int    // prompt tokens
	reply   string // the content of a successful reply without tool calls
	// calls are the tool calls of a successful reply, if it makes any (see
	// plan); reply is then only what the content faults start from.
	calls []tasks.ToolCall
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

var roles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// parseCall reads and validates a request body; on failure it returns the
// 400 to send.
func parseCall(r *http.Request, now time.Time) (*call, *response) {
	c := &call{created: now.Unix()}
	if bad := decodeBody(r, &c.req); bad != nil {
		return nil, bad
	}
	if msg, param := c.req.invalid(); msg != "" {
		resp := errInvalidRequest(msg, param)
		return nil, &resp
	}
	// The same rule as the worker's, so keys agree across the fleet.
	c.last = (&tasks.Item{Messages: c.req.Messages}).LastUserContent()
	c.key = Key(c.last)
	c.counter = tokens.ForModel(c.req.Model)
	c.prompt = c.counter.Messages(c.req.Messages)
	c.reply = c.textReply(ReplyPrefix + c.key)
	return c, nil
}

// decodeBody reads r's JSON body into v; on failure it returns the 400 to
// send.
func decodeBody(r *http.Request, v any) *response {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		resp := errInvalidRequest("We could not read the body of your request: "+err.Error(), nil)
		return &resp
	}
	if len(body) > maxBodyBytes {
		resp := errInvalidRequest(fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes), nil)
		return &resp
	}
	if err := json.Unmarshal(body, v); err != nil {
		resp := errInvalidRequest("We could not parse the JSON body of your request. "+
			"(HINT: This likely means you aren't using your HTTP library correctly. "+
			"The OpenAI API expects a JSON payload.) "+err.Error(), nil)
		return &resp
	}
	return nil
}

// textReply returns the content of a reply saying s: s itself; for
// json_schema a value generated to match the schema, its free strings
// saying s; {"reply":s} for json_object, and for json_schema without a
// schema or with one beyond the generator.
func (c *call) textReply(s string) string {
	f := c.req.ResponseFormat
	if f == nil || (f.Type != "json_object" && f.Type != "json_schema") {
		return s
	}
	if f.Type == "json_schema" {
		if schema := f.schema(); schema != nil {
			if out, err := schemaReply(schema, s); err == nil {
				return out
			}
		}
	}
	b, _ := json.Marshal(map[string]string{"reply": s}) // cannot fail
	return string(b)
}

// invalid returns the message and param of the first problem OpenAI would
// reject the request for, or "".
func (q *chatRequest) invalid() (msg string, param any) {
	switch {
	case q.Model == "":
		return "you must provide a model parameter", "model"
	case len(q.Messages) == 0:
		return "'messages' is a required property and must not be empty", "messages"
	case q.Stream:
		return "stream is not supported by the simulator", "stream"
	case q.MaxTokens != nil && *q.MaxTokens < 1:
		return fmt.Sprintf("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *q.MaxTokens), "max_tokens"
	case q.MaxCompletionTokens != nil && *q.MaxCompletionTokens < 1:
		return fmt.Sprintf("Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *q.MaxCompletionTokens), "max_completion_tokens"
	case q.Temperature != nil && (*q.Temperature < 0 || *q.Temperature > 2):
		return fmt.Sprintf("Invalid 'temperature': %g is not in [0, 2].", *q.Temperature), "temperature"
	case q.TopP != nil && (*q.TopP < 0 || *q.TopP > 1):
		return fmt.Sprintf("Invalid 'top_p': %g is not in [0, 1].", *q.TopP), "top_p"
	case q.ResponseFormat != nil && !validFormats[q.ResponseFormat.Type]:
		return fmt.Sprintf("Invalid 'response_format.type': %q is not one of text, json_object, json_schema.", q.ResponseFormat.Type), "response_format.type"
	}
	if q.ResponseFormat != nil && q.ResponseFormat.Type == "json_schema" {
		if msg, param := q.ResponseFormat.invalidSchema(); msg != "" {
			return msg, param
		}
	}
	if len(q.Stop) > 0 && string(q.Stop) != "null" {
		var one string
		var many []string
		if json.Unmarshal(q.Stop, &one) != nil && (json.Unmarshal(q.Stop, &many) != nil || len(many) > 4) {
			return "Invalid 'stop': expected a string or an array of at most 4 strings.", "stop"
		}
	}
	for i, m := range q.Messages {
		if !roles[m.Role] {
			return fmt.Sprintf("Invalid value: %q. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.", m.Role),
				fmt.Sprintf("messages[%d].role", i)
		}
	}
	if msg, param := q.invalidTools(); msg != "" {
		return msg, param
	}
	return invalidToolMessages(q.Messages)
}

var validFormats = map[string]bool{"text": true, "json_object": true, "json_schema": true}

// invalidSchema returns OpenAI's message and param for a json_schema format
// without its json_schema object, or whose json_schema or schema is not an
// object; "" otherwise. json_schema's name and strict are not checked.
func (f *responseFormat) invalidSchema() (msg string, param any) {
	const at = "response_format.json_schema"
	if !present(f.JSONSchema) {
		return "Missing required parameter: '" + at + "'.", at
	}
	if k := jsonKind(f.JSONSchema); k != "an object" {
		return fmt.Sprintf("Invalid type for '%s': expected an object, but got %s instead.", at, k), at
	}
	var js struct {
		Schema json.RawMessage `json:"schema"`
	}
	_ = json.Unmarshal(f.JSONSchema, &js) // an object: cannot fail
	if present(js.Schema) {
		if k := jsonKind(js.Schema); k != "an object" {
			return fmt.Sprintf("Invalid type for '%s.schema': expected an object, but got %s instead.", at, k), at + ".schema"
		}
	}
	return "", nil
}

// jsonKind names the kind of a JSON value the way OpenAI's type errors do:
// "an object", "an array", "a string", "a number", "a boolean" or "null".
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// success is the 200 the call gets when no fault applies: its tool calls,
// or its reply; without a usage object when withUsage is false.
func (c *call) success(withUsage bool) response {
	if len(c.calls) > 0 {
		msg := replyMessage{Role: "assistant", ToolCalls: c.calls}
		return c.chatCompletion(msg, "tool_calls", c.callTokens(), withUsage)
	}
	return c.completionWith(c.reply, "stop", withUsage)
}

// cost is the TPM cost of the call's success: its prompt and completion
// tokens.
func (c *call) cost() int {
	if len(c.calls) > 0 {
		return c.prompt + c.callTokens()
	}
	return c.prompt + c.counter.Text(c.reply)
}

// completion is a 200 chat completion with the given content.
func (c *call) completion(content string) response {
	return c.completionWith(content, "stop", true)
}

// completionWith is a 200 chat completion with the given content and
// finish_reason, and without a usage object when withUsage is false.
func (c *call) completionWith(content, finish string, withUsage bool) response {
	msg := replyMessage{Role: "assistant", Content: &content}
	return c.chatCompletion(msg, finish, c.counter.Text(content), withUsage)
}

// replyMessage is the assistant message of a chat completion. Content is
// null when the message makes tool calls, as OpenAI sends it.
type replyMessage struct {
	Role      string           `json:"role"`
	Content   *string          `json:"content"`
	ToolCalls []tasks.ToolCall `json:"tool_calls,omitempty"`
}

// chatCompletion is a 200 chat completion of msg, whose completion tokens
// are given.
func (c *call) chatCompletion(msg replyMessage, finish string, completionTokens int, withUsage bool) response {
	u := usage{PromptTokens: c.prompt, CompletionTokens: completionTokens}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	type choice struct {
		Index        int          `json:"index"`
		Message      replyMessage `json:"message"`
		Logprobs     any          `json:"logprobs"`
		FinishReason string       `json:"finish_reason"`
	}
	var used *usage
	if withUsage {
		used = &u
	}
	resp := jsonResponse(http.StatusOK, struct {
		ID                string   `json:"id"`
		Object            string   `json:"object"`
		Created           int64    `json:"created"`
		Model             string   `json:"model"`
		Choices           []choice `json:"choices"`
		Usage             *usage   `json:"usage,omitempty"`
		SystemFingerprint string   `json:"system_fingerprint"`
	}{
		ID:                c.id,
		Object:            "chat.completion",
		Created:           c.created,
		Model:             c.req.Model,
		Choices:           []choice{{Message: msg, FinishReason: finish}},
		Usage:             used,
		SystemFingerprint: "fp_mockllm",
	})
	// Stats count what the call consumed, reported or not.
	resp.usage = &u
	return resp
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.now()
	s.mu.Lock()
	s.stats.Calls++
	s.mu.Unlock()
	s.deliver(w, r, s.answer(r, now), chatEndpoint)
}

// answer decides the response to a chat completion arriving at now. The
// order is: auth, request validation, RPM/TPM, context limit, directives,
// random faults.
func (s *Server) answer(r *http.Request, now time.Time) response {
	if !s.authorized(r) {
		return errInvalidAPIKey()
	}
	c, bad := parseCall(r, now)
	if bad != nil {
		return *bad
	}
	c.id = "chatcmpl-mock" + strconv.FormatUint(s.seq.Add(1), 10)

	// Directives are read now because the answer they choose sets the TPM
	// cost; their errors answer in their turn below.
	d, dirErr := c.directives()
	cost := c.cost()
	s.mu.Lock()
	s.stats.ByContent[c.key]++
	s.stats.TimesByContent[c.key] = append(s.stats.TimesByContent[c.key], now)
	verdict, wait := s.window.admit(now, cost)
	s.mu.Unlock()
	if resp, limited := s.limited(c.req.Model, verdict, wait, cost); limited {
		return resp
	}

	if s.cfg.contextLimit > 0 && c.prompt > s.cfg.contextLimit {
		return errContextLength(s.cfg.contextLimit, c.prompt)
	}

	if dirErr != nil {
		return *dirErr
	}
	var code string
	switch {
	case d.fail != "":
		code = d.fail
	case d.failFirst != "":
		s.mu.Lock()
		s.failFirst[c.key]++
		n := s.failFirst[c.key]
		s.mu.Unlock()
		if n <= d.failFirstN {
			code = d.failFirst
		}
	default:
		// Only calls without #fail or #fail-first draw a random fault, so
		// those directives stay deterministic.
		s.mu.Lock()
		code = s.faults.pick(s.rng.Float64())
		s.mu.Unlock()
	}
	if code == "" {
		return c.success(true)
	}
	retryAfter := s.cfg.retryAfter
	if d.hasRetryAfter {
		retryAfter = d.retryAfter
	}
	return faultResponse(code, c, retryAfter)
}

// directives parses the directives of c's last user message and plans
// c's answer with them; on failure it returns the 400 to send.
func (c *call) directives() (directives, *response) {
	d, err := parseDirectives(c.last)
	if err == nil {
		err = c.plan(d)
	}
	if err != nil {
		resp := errInvalidRequest("mockllm: "+err.Error(), "messages")
		return d, &resp
	}
	return d, nil
}

// limited returns the 429 of a call to model that the RPM/TPM window did
// not admit.
func (s *Server) limited(model string, v verdict, wait time.Duration, cost int) (response, bool) {
	secs := max(int((wait+time.Second-1)/time.Second), 1, s.cfg.retryAfter)
	switch v {
	case overRPM:
		return errRateLimit("requests", fmt.Sprintf(
			"Rate limit reached for %s on requests per min (RPM): Limit %d. Please try again in %ds.",
			model, s.cfg.rpm, secs), secs), true
	case overTPM:
		resp := errRateLimit("tokens", fmt.Sprintf(
			"Rate limit reached for %s on tokens per min (TPM): Limit %d, Requested %d. Please try again in %ds.",
			model, s.cfg.tpm, cost, secs), secs)
		resp.header["x-ratelimit-reset-tokens"] = strconv.Itoa(secs) + "s"
		return resp, true
	case tooLarge:
		return errorResponse(http.StatusTooManyRequests, "tokens", "rate_limit_exceeded", nil, fmt.Sprintf(
			"Request too large for %s on tokens per min (TPM): Limit %d, Requested %d. "+
				"The input or output tokens must be reduced in order to run successfully.",
			model, s.cfg.tpm, cost)), true
	}
	return response{}, false
}

// endpoint says which stats an outcome counts in.
type endpoint int

const (
	chatEndpoint endpoint = iota
	embeddingsEndpoint
)

// deliver records the outcome under ep, applies latency and sends resp.
// Stats are recorded before the response is written, so a client that has
// its answer sees it counted.
func (s *Server) deliver(w http.ResponseWriter, r *http.Request, resp response, ep endpoint) {
	if resp.hold {
		s.record(ep, CodeTimeout, nil)
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		panic(http.ErrAbortHandler) // end the request without a response
	}
	if !s.sleep(r.Context()) {
		s.record(ep, "canceled", nil)
		panic(http.ErrAbortHandler)
	}
	if resp.reset {
		s.record(ep, CodeReset, nil)
		resetConn(w)
		return
	}
	s.record(ep, strconv.Itoa(resp.status), resp.usage)
	resp.write(w)
}

func (s *Server) record(ep endpoint, status string, u *usage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ep == embeddingsEndpoint {
		s.stats.EmbeddingByStatus[status]++
		if u != nil {
			s.stats.EmbeddingTokens += u.PromptTokens
		}
		return
	}
	s.stats.ByStatus[status]++
	if u != nil {
		s.stats.TokensIn += u.PromptTokens
		s.stats.TokensOut += u.CompletionTokens
	}
}

// sleep waits for one simulated latency; false means the client gave up or
// the server was closed meanwhile.
func (s *Server) sleep(ctx context.Context) bool {
	lo, hi := s.cfg.latMin, s.cfg.latMax
	d := lo
	if hi > lo {
		s.mu.Lock()
		d += time.Duration(s.rng.Int64N(int64(hi-lo) + 1))
		s.mu.Unlock()
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// resetConn closes the client's connection without a response, with a TCP
// RST where possible (what a crashing proxy looks like to a client).
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a wrapped writer: aborting the handler resets the
		// stream instead.
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
