package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/llmfleet/llmfleet/agent"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/schema"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

// Config configures a Client.
type Config struct {
	// BaseURL of the OpenAI-compatible API, e.g. "https://api.openai.com/v1".
	// Empty means OpenAI's.
	BaseURL string
	// APIKey is sent as a bearer token; empty sends none (Ollama, vLLM).
	APIKey string
	// Concurrency is how many calls may be in flight; it sizes the
	// connection pool. Zero means 10.
	Concurrency int
}

// DefaultBaseURL is OpenAI's API, used when no base URL is configured.
const DefaultBaseURL = "https://api.openai.com/v1"

// Client makes chat completion calls.
type Client struct {
	oa      *openai.Client
	baseURL string
	// key is kept only to mask it wherever a provider echoes it back.
	key string
	// schemas are the json_schema response formats seen, compiled.
	schemas *schema.Cache
}

// NewClient returns a Client. The API key stays inside go-openai's config:
// it is never logged or returned.
func NewClient(cfg Config) *Client {
	n := cfg.Concurrency
	if n <= 0 {
		n = 10
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          n * 2,
		MaxIdleConnsPerHost:   n,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	// No client-wide timeout: each attempt's context bounds the call.
	oc.HTTPClient = &capturingDoer{c: &http.Client{Transport: tr}, key: []byte(cfg.APIKey)}
	return &Client{oa: openai.NewClientWithConfig(oc), baseURL: oc.BaseURL, key: cfg.APIKey, schemas: &schema.Cache{}}
}

// BaseURL returns the API base URL the client calls.
func (c *Client) BaseURL() string { return c.baseURL }

// Completion is a successful call's outcome.
type Completion struct {
	Content      string
	Model        string
	FinishReason string
	TokensIn     int
	TokensOut    int
	// ToolCalls are the tools the model asked to call (agent items).
	ToolCalls []tasks.ToolCall
	// Body and RequestID are the provider's response body (compact JSON)
	// and its x-request-id, kept for items of OpenAI batch files only.
	Body      json.RawMessage
	RequestID string
	// UsageEstimated says the answer carried no usage (some self-hosted
	// servers and proxies send none) and the tokens were counted here, so
	// that budgets and the TPM limiter still see them.
	UsageEstimated bool
}

// Complete makes one chat completion call for item, with model as the
// default when the item names none, offering the model tools when given.
// Every failure is an *Error.
func (c *Client) Complete(ctx context.Context, it *tasks.Item, model string, tools ...agent.Tool) (*Completion, error) {
	req := Request(it, model, tools...)
	ex := &Exchange{}
	resp, err := c.oa.CreateChatCompletion(withExchange(ctx, ex), req)
	if pe := c.failure(ctx, err, ex); pe != nil {
		return nil, pe
	}
	if len(resp.Choices) == 0 {
		if bytes.Contains(ex.Head, []byte(`"error"`)) {
			return nil, c.mask(&Error{Class: UpstreamInvalid, Status: ex.Status, Message: "2xx answer carries an error: " + bodyReason(ex.Head)})
		}
		return nil, &Error{Class: InvalidOutput, Status: ex.Status, Message: "answer has no choices"}
	}
	ch := resp.Choices[0]
	out := &Completion{
		Content:      ch.Message.Content,
		Model:        resp.Model,
		FinishReason: string(ch.FinishReason),
		TokensIn:     resp.Usage.PromptTokens,
		TokensOut:    resp.Usage.CompletionTokens,
	}
	if out.Model == "" {
		out.Model = req.Model
	}
	if it.Batch {
		var b bytes.Buffer
		if json.Compact(&b, ex.Body) == nil {
			out.Body = b.Bytes()
		}
		out.RequestID = requestID(ex.Header)
	}
	for _, tc := range ch.Message.ToolCalls {
		typ := string(tc.Type)
		if typ == "" {
			typ = "function" // some servers leave it out
		}
		out.ToolCalls = append(out.ToolCalls, tasks.ToolCall{ID: tc.ID, Type: typ,
			Function: tasks.FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
	}
	if resp.Usage.PromptTokens == 0 && resp.Usage.CompletionTokens == 0 && resp.Usage.TotalTokens == 0 {
		counter := tokens.ForModel(req.Model)
		out.TokensIn, out.TokensOut = counter.Messages(it.Messages), counter.Text(ch.Message.Content)+counter.ToolCalls(out.ToolCalls)
		out.UsageEstimated = true
	}
	if ch.FinishReason == openai.FinishReasonContentFilter {
		return out, &Error{Class: ContentFilter, Status: ex.Status, Message: "the provider's content filter withheld the answer"}
	}
	if len(out.ToolCalls) > 0 {
		if len(tools) == 0 {
			return out, &Error{Class: InvalidOutput, Status: ex.Status, Message: "the answer calls tools, but none were offered"}
		}
		for _, tc := range out.ToolCalls {
			if tc.ID == "" || tc.Function.Name == "" {
				return out, &Error{Class: InvalidOutput, Status: ex.Status, Message: "the answer has a tool call without an id or a name"}
			}
		}
		return out, nil
	}
	if strings.TrimSpace(out.Content) == "" {
		return out, &Error{Class: InvalidOutput, Status: ex.Status, Message: "answer content is empty"}
	}
	if it.WantsJSON() && ch.FinishReason == openai.FinishReasonLength {
		return out, &Error{Class: InvalidOutput, Status: ex.Status, Message: "JSON was asked for but the answer was cut at its token limit (finish_reason length): raise max_tokens"}
	}
	if it.WantsJSON() && !json.Valid([]byte(out.Content)) {
		return out, c.mask(&Error{Class: InvalidOutput, Status: ex.Status, Message: "JSON was asked for but the answer is not valid JSON: " + Scrub(out.Content), Reask: true})
	}
	if f := it.ResponseFormat; f != nil && f.JSONSchema != nil {
		sch, err := c.schemas.Get(f.JSONSchema.Schema)
		if err != nil {
			return out, &Error{Class: BadRequest, Status: ex.Status, Message: "the item's JSON Schema does not compile: " + err.Error()}
		}
		var ve *schema.ValidationError
		if err := sch.Validate([]byte(out.Content)); errors.As(err, &ve) {
			return out, &Error{Class: InvalidOutput, Status: ex.Status, Reask: true,
				Message: fmt.Sprintf("the answer does not match the JSON Schema %q: %s", f.JSONSchema.Name, ve.Error())}
		}
	}
	return out, nil
}

// requestID is the provider's id of a request, when it sent one.
func requestID(h http.Header) string {
	for _, k := range []string{"x-request-id", "request-id", "x-amzn-requestid", "cf-ray"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// Embeddings is a successful embedding call's outcome: one vector per
// input, in input order.
type Embeddings struct {
	Vectors  [][]float32
	Model    string
	TokensIn int
	// UsageEstimated says the answer carried no usage: the inputs' tokens
	// were counted here.
	UsageEstimated bool
	RequestID      string
}

// Embed makes one embedding call for inputs (dims 0 leaves the model's
// default). Every failure is an *Error; an answer without one vector per
// input is upstream_invalid.
func (c *Client) Embed(ctx context.Context, model string, inputs []string, dims int) (*Embeddings, error) {
	ex := &Exchange{}
	resp, err := c.oa.CreateEmbeddings(withExchange(ctx, ex), openai.EmbeddingRequestStrings{
		Input: inputs, Model: openai.EmbeddingModel(model), Dimensions: dims,
	})
	if pe := c.failure(ctx, err, ex); pe != nil {
		return nil, pe
	}
	out := &Embeddings{Model: string(resp.Model), TokensIn: resp.Usage.PromptTokens, RequestID: requestID(ex.Header), Vectors: make([][]float32, len(inputs))}
	if out.Model == "" {
		out.Model = model
	}
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(inputs) || out.Vectors[d.Index] != nil {
			return nil, &Error{Class: UpstreamInvalid, Status: ex.Status, Message: fmt.Sprintf("embedding answer has a bad or repeated index %d for %d inputs", d.Index, len(inputs))}
		}
		out.Vectors[d.Index] = d.Embedding
	}
	for i, v := range out.Vectors {
		if len(v) == 0 {
			return nil, &Error{Class: UpstreamInvalid, Status: ex.Status, Message: fmt.Sprintf("embedding answer has no vector for input %d of %d", i, len(inputs))}
		}
	}
	if out.TokensIn == 0 && resp.Usage.TotalTokens == 0 {
		counter := tokens.ForModel(model)
		for _, in := range inputs {
			out.TokensIn += counter.Text(in)
		}
		out.UsageEstimated = true
	}
	return out, nil
}

// failure classifies a call that did not answer (err), or answered with a
// redirect go-openai took for success; nil for an answer to read.
func (c *Client) failure(ctx context.Context, err error, ex *Exchange) *Error {
	if err == nil && ex.Status >= 300 && ex.Status < 400 {
		// go-openai takes any status below 400 for success; a redirect it
		// did not follow is not an answer, whatever its body.
		return c.mask(&Error{Class: UpstreamInvalid, Status: ex.Status, Message: redirectReason(ex)})
	}
	if err == nil {
		return nil
	}
	if ex.Status == 0 {
		ex = nil
	}
	return c.mask(Classify(ctx, err, ex))
}

// mask removes the configured key from a provider's message, whatever its
// shape (Scrub only knows the common ones).
func (c *Client) mask(e *Error) *Error {
	if c.key == "" || len(c.key) < 6 || !strings.Contains(e.Message+e.Code, c.key) {
		return e
	}
	e.Message = strings.ReplaceAll(e.Message, c.key, "***")
	e.Code = strings.ReplaceAll(e.Code, c.key, "***")
	e.Err = errors.New(e.Message)
	return e
}

// Request builds the go-openai request for an item, with the tools it may
// call.
func Request(it *tasks.Item, model string, tools ...agent.Tool) openai.ChatCompletionRequest {
	req := openai.ChatCompletionRequest{
		Model: model,
		Stop:  it.Stop,
		Seed:  it.Seed,
	}
	if it.Model != "" {
		req.Model = it.Model
	}
	if reasoningModel(req.Model) {
		req.MaxCompletionTokens = it.MaxTokens
	} else {
		// max_tokens is what every OpenAI-compatible server (vLLM, Ollama,
		// LiteLLM) understands; OpenAI's reasoning models refuse it.
		//lint:ignore SA1019 deprecated by OpenAI only for its reasoning models
		req.MaxTokens = it.MaxTokens
	}
	for _, m := range it.Messages {
		msg := openai.ChatCompletionMessage{Role: m.Role, Content: m.Content, Name: m.Name, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{ID: tc.ID, Type: openai.ToolType(tc.Type),
				Function: openai.FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
		}
		req.Messages = append(req.Messages, msg)
	}
	for _, t := range tools {
		req.Tools = append(req.Tools, openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
			Name: t.Name, Description: t.Description, Parameters: t.Parameters}})
	}
	if len(tools) > 0 {
		if len(it.ToolChoice) > 0 {
			req.ToolChoice = it.ToolChoice
		}
		if it.ParallelToolCalls != nil {
			req.ParallelToolCalls = *it.ParallelToolCalls
		}
	}
	if it.Temperature != nil {
		// go-openai omits a zero temperature; the smallest float keeps an
		// explicit 0 on the wire.
		req.Temperature = nonZero(*it.Temperature)
	}
	if it.TopP != nil {
		req.TopP = nonZero(*it.TopP)
	}
	if f := it.ResponseFormat; f != nil {
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatType(f.Type)}
		if js := f.JSONSchema; js != nil {
			req.ResponseFormat.JSONSchema = &openai.ChatCompletionResponseFormatJSONSchema{
				Name: js.Name, Description: js.Description, Schema: js.Schema, Strict: js.Strict != nil && *js.Strict}
		}
	}
	return req
}

// reasoningModel reports OpenAI models that take max_completion_tokens only.
func reasoningModel(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if model == p || strings.HasPrefix(model, p+"-") {
			return true
		}
	}
	return false
}

func nonZero(f float32) float32 {
	if f == 0 {
		return math.SmallestNonzeroFloat32
	}
	return f
}

type exchangeKey struct{}

func withExchange(ctx context.Context, ex *Exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

// headBytes is how much of a body is kept for diagnosis.
const headBytes = 16 << 10

// maxBody bounds a response body: a chat completion is far smaller, and a
// misbehaving upstream must not exhaust a worker's memory.
const maxBody = 64 << 20

// capturingDoer records the status, headers and body head of each exchange
// into the Exchange carried by the request's context, because go-openai
// drops them from its errors.
type capturingDoer struct {
	c *http.Client
	// key is masked in every body before anything reads it: a provider
	// that echoes it must not put it into a reason, a result or a log,
	// whether or not a truncation would have cut it.
	key []byte
}

func (d *capturingDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.c.Do(req)
	if err != nil {
		return nil, err
	}
	ex, _ := req.Context().Value(exchangeKey{}).(*Exchange)
	if ex == nil {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	resp.Body.Close()
	if err != nil {
		// A body cut mid-way is a transport failure, not an answer.
		return nil, fmt.Errorf("read response body: %w", err)
	}
	ex.Status = resp.StatusCode
	ex.Header = resp.Header
	if len(body) > maxBody {
		return nil, errors.New("response body over 64 MiB")
	}
	if len(d.key) >= 6 && bytes.Contains(body, d.key) {
		body = bytes.ReplaceAll(body, d.key, []byte("***"))
	}
	ex.Head = body[:min(len(body), headBytes)]
	ex.Body = body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
