package simulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/llmfleet/llmfleet/tokens"
)

// Embedding limits: OpenAI's for the inputs and tokens of one request, the
// simulator's for dimensions (a SHA-256 has 32 bytes).
const (
	DefaultEmbeddingDimensions = 8
	MaxEmbeddingDimensions     = 32
	MaxEmbeddingInputs         = 2048
	// MaxEmbeddingTokens is the most tokens, summed over its inputs, that
	// one embedding request may carry.
	MaxEmbeddingTokens = 300000
)

// Embedding returns the vector the simulator answers for input with dims
// dimensions: component k is byte k of the SHA-256 of input divided by 255,
// computed in float32 (float32(b) / 255), which is what go-openai decodes
// from the float and base64 answers alike. dims 0 means
// DefaultEmbeddingDimensions; Embedding panics when dims is negative or
// above MaxEmbeddingDimensions.
func Embedding(input string, dims int) []float32 {
	if dims == 0 {
		dims = DefaultEmbeddingDimensions
	}
	if dims < 0 || dims > MaxEmbeddingDimensions {
		panic("simulator: Embedding dimensions " + strconv.Itoa(dims) + " out of [1, 32]")
	}
	sum := sha256.Sum256([]byte(input))
	v := make([]float32, dims)
	for k := range v {
		v[k] = float32(sum[k]) / 255
	}
	return v
}

// embeddingRequest is the part of OpenAI's embedding request the simulator
// reads; user and other fields are accepted and ignored.
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat *string         `json:"encoding_format"`
}

// embedCall is a parsed embedding request.
type embedCall struct {
	model   string
	inputs  []string
	keys    []string // Key of each input
	dims    int
	base64  bool
	counter tokens.Counter
	tokens  []int // tokens of each input
	prompt  int   // their sum
}

// OpenAI's answer to an input it cannot read: an empty string, an empty
// array, a value of the wrong type.
const errInputInvalid = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."

// parseEmbedCall reads and validates an embedding request; on failure it
// returns the 400 to send.
func parseEmbedCall(r *http.Request) (*embedCall, *response) {
	var q embeddingRequest
	if bad := decodeBody(r, &q); bad != nil {
		return nil, bad
	}
	bad := func(msg, param string) (*embedCall, *response) {
		resp := errInvalidRequest(msg, param)
		return nil, &resp
	}
	if q.Model == "" {
		return bad("you must provide a model parameter", "model")
	}
	inputs, msg := parseInputs(q.Input)
	if msg != "" {
		return bad(msg, "input")
	}
	e := &embedCall{model: q.Model, inputs: inputs, dims: DefaultEmbeddingDimensions}
	if d := q.Dimensions; d != nil {
		switch {
		case *d < 1:
			return bad(fmt.Sprintf("Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got %d instead.", *d), "dimensions")
		case *d > MaxEmbeddingDimensions:
			return bad(fmt.Sprintf("Invalid 'dimensions': integer above maximum value. Expected a value <= %d, but got %d instead.", MaxEmbeddingDimensions, *d), "dimensions")
		}
		e.dims = *d
	}
	if f := q.EncodingFormat; f != nil {
		switch *f {
		case "float":
		case "base64":
			e.base64 = true
		default:
			return bad(fmt.Sprintf("Invalid value: %q. Supported values are: 'float' and 'base64'.", *f), "encoding_format")
		}
	}
	e.counter = tokens.ForModel(q.Model)
	e.tokens = make([]int, len(inputs))
	e.keys = make([]string, len(inputs))
	for i, in := range inputs {
		e.tokens[i] = e.counter.Text(in)
		e.prompt += e.tokens[i]
		e.keys[i] = Key(in)
	}
	if e.prompt > MaxEmbeddingTokens {
		return bad(fmt.Sprintf("Requested %d tokens, max %d tokens per request", e.prompt, MaxEmbeddingTokens), "input")
	}
	return e, nil
}

// parseInputs reads input: a non-empty string or a non-empty array of at
// most MaxEmbeddingInputs non-empty strings. On failure it returns OpenAI's
// message (param "input"). Token arrays, which OpenAI also accepts, are
// refused by name.
func parseInputs(raw json.RawMessage) ([]string, string) {
	const tokenInputs = "mockllm: token array inputs are not supported; send 'input' as a string or an array of strings."
	raw = bytes.TrimSpace(raw)
	if !present(raw) {
		return nil, "'input' is a required property"
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" {
			return nil, errInputInvalid
		}
		return []string{s}, ""
	case '[':
	default:
		return nil, errInputInvalid
	}
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil || len(elems) == 0 {
		return nil, errInputInvalid
	}
	if len(elems) > MaxEmbeddingInputs {
		return nil, fmt.Sprintf("Invalid 'input': array too long. Expected an array with maximum length %d, but got an array with length %d instead.",
			MaxEmbeddingInputs, len(elems))
	}
	inputs := make([]string, len(elems))
	for i, el := range elems {
		switch kind := jsonKind(el); kind {
		case "a string":
			if json.Unmarshal(el, &inputs[i]) != nil || inputs[i] == "" {
				return nil, errInputInvalid
			}
		case "a number", "an array":
			return nil, tokenInputs
		default:
			return nil, errInputInvalid
		}
	}
	return inputs, ""
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.now()
	s.mu.Lock()
	s.stats.EmbeddingCalls++
	s.mu.Unlock()
	s.deliver(w, r, s.answerEmbeddings(r, now), embeddingsEndpoint)
}

// answerEmbeddings decides the response to an embedding request arriving
// at now, in the order of chat completions: auth, request validation,
// RPM/TPM, context limit (per input), directives, random faults.
func (s *Server) answerEmbeddings(r *http.Request, now time.Time) response {
	if !s.authorized(r) {
		return errInvalidAPIKey()
	}
	e, bad := parseEmbedCall(r)
	if bad != nil {
		return *bad
	}
	ds, dirErr := e.directives()
	s.mu.Lock()
	s.stats.EmbeddingInputs += len(e.inputs)
	for _, k := range e.keys {
		s.stats.EmbeddingByContent[k]++
	}
	verdict, wait := s.window.admit(now, e.prompt)
	s.mu.Unlock()
	if resp, limited := s.limited(e.model, verdict, wait, e.prompt); limited {
		return resp
	}

	if limit := s.cfg.contextLimit; limit > 0 {
		for i, n := range e.tokens {
			if n > limit {
				return errInputLength(i, limit, n)
			}
		}
	}

	if dirErr != nil {
		return *dirErr
	}
	code, at := s.embeddingFault(e, ds)
	if code == "" {
		return e.success(true)
	}
	retryAfter := s.cfg.retryAfter
	for _, d := range ds {
		if d.hasRetryAfter {
			retryAfter = d.retryAfter
			break
		}
	}
	return e.faultResponse(code, at, retryAfter)
}

// directives parses the directives of every input (ds[i] is input i's);
// on failure it returns the 400 naming the input.
func (e *embedCall) directives() ([]directives, *response) {
	ds := make([]directives, len(e.inputs))
	for i, in := range e.inputs {
		d, err := parseDirectives(in)
		if err != nil {
			resp := errInvalidRequest(fmt.Sprintf("mockllm: input[%d]: %v", i, err), "input")
			return ds, &resp
		}
		ds[i] = d
	}
	return ds, nil
}

// embeddingFault chooses the fault of a request whose inputs have
// directives ds, and the index of the input that chose it (-1 for a random
// fault): the first input's #fail; else, when #fail-first inputs are still
// within their count, the first of them; else, when no input has either,
// a draw from the random mix. Each #fail-first input's count moves once per
// request that reaches this point without a #fail, as a chat call's does.
func (s *Server) embeddingFault(e *embedCall, ds []directives) (code string, at int) {
	directed := false
	for i, d := range ds {
		if d.fail != "" {
			return d.fail, i
		}
		directed = directed || d.failFirst != ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !directed {
		return s.faults.pick(s.rng.Float64()), -1
	}
	code, at = "", -1
	counted := map[string]bool{}
	for i, d := range ds {
		if d.failFirst == "" {
			continue
		}
		k := "embeddings/" + e.keys[i] // apart from chat calls' counts
		if !counted[k] {
			counted[k] = true
			s.failFirst[k]++
		}
		if at < 0 && s.failFirst[k] <= d.failFirstN {
			code, at = d.failFirst, i
		}
	}
	return code, at
}

// errInputLength is the 400 of input i, of got tokens, over the context
// limit.
func errInputLength(i, limit, got int) response {
	return errorResponse(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", "input",
		fmt.Sprintf("Invalid 'input[%d]': This model's maximum context length is %d tokens, however you requested %d tokens. "+
			"Please reduce the length of the input.", i, limit, got))
}

// faultResponse returns the response of a fault code for e; at is the
// input whose directive chose it, or -1.
func (e *embedCall) faultResponse(code string, at, retryAfter int) response {
	switch code {
	case Code400:
		if at >= 0 {
			return errInvalidRequest(fmt.Sprintf("Invalid 'input[%d]': the input was rejected (simulated by mockllm).", at), "input")
		}
	case CodeOverflow:
		// The input that asked for it, or the longest; the claimed limit
		// is half its tokens, as for chat.
		if at < 0 {
			at = 0
			for i, n := range e.tokens {
				if n > e.tokens[at] {
					at = i
				}
			}
		}
		return errInputLength(at, max(1, e.tokens[at]/2), e.tokens[at])
	case CodeBadJSON:
		return response{status: http.StatusOK, contentType: "application/json",
			body: []byte(ReplyPrefix + e.keys[max(at, 0)] + " not json\n")}
	case CodeEmpty:
		return e.list(false, true)
	case CodeNoUsage:
		return e.success(false)
	case CodeLength:
		// No finish_reason to cut: an embedding answer is whole.
		return e.success(true)
	case CodeSchemaMiss:
		return response{status: http.StatusOK, contentType: "application/json", body: []byte(SchemaMissReply + "\n")}
	}
	return errorFault(code, e.model, retryAfter)
}

// success is the 200 embedding list, without a usage object when
// withUsage is false.
func (e *embedCall) success(withUsage bool) response {
	return e.list(true, withUsage)
}

// list is a 200 embedding list: one vector per input, or none when
// withData is false.
func (e *embedCall) list(withData, withUsage bool) response {
	type datum struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"` // []float32, or a base64 string
	}
	type embeddingUsage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	data := []datum{}
	if withData {
		data = make([]datum, len(e.inputs))
		for i, in := range e.inputs {
			v := Embedding(in, e.dims)
			data[i] = datum{Object: "embedding", Index: i, Embedding: v}
			if e.base64 {
				data[i].Embedding = base64Floats(v)
			}
		}
	}
	var used *embeddingUsage
	if withUsage {
		used = &embeddingUsage{PromptTokens: e.prompt, TotalTokens: e.prompt}
	}
	resp := jsonResponse(http.StatusOK, struct {
		Object string          `json:"object"`
		Data   []datum         `json:"data"`
		Model  string          `json:"model"`
		Usage  *embeddingUsage `json:"usage,omitempty"`
	}{Object: "list", Data: data, Model: e.model, Usage: used})
	// Stats count what the request consumed, reported or not.
	resp.usage = &usage{PromptTokens: e.prompt, TotalTokens: e.prompt}
	return resp
}

// base64Floats is OpenAI's base64 encoding of a vector: its float32s,
// little-endian, in standard base64.
func base64Floats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}
