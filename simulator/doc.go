// Package simulator is an OpenAI-compatible chat completion and embedding
// server that injects faults on demand: the provider of llmfleet's demo, tests,
// benchmarks and compose setup. cmd/mockllm serves it; the embedded mode and
// tests run it in-process with Start (on "127.0.0.1:0" for a free port) or
// mount a Server as an http.Handler.
//
// # Endpoints
//
//   - POST /v1/chat/completions: OpenAI's request and chat.completion
//     response; usage is counted with package tokens for the requested
//     model (prompt with the chat message formula, completion as the
//     reply's text). The reply is "mock:" + Key(last user message);
//     {"reply":"mock:<key>"} when response_format asks for json_object; for
//     json_schema a JSON value made to match the schema (see Structured
//     output). finish_reason is "stop", or "tool_calls" when the
//     answer calls tools (see Tools); max_tokens and stop are validated but
//     do not cut the reply. stream is rejected. Invalid JSON, a missing
//     model, no messages, out-of-range options and tool calls that break
//     OpenAI's message rules get OpenAI's 400 invalid_request_error.
//   - POST /v1/embeddings: OpenAI's request and embedding list; the vector
//     of an input is Embedding(input, dimensions). See Embeddings.
//   - GET /v1/models: OpenAI's list format (gpt-4o-mini, gpt-4o,
//     gpt-4.1-mini, mock); any model is accepted by chat completions.
//   - GET /admin/stats (?times=1 adds times_by_content), GET and PUT
//     /admin/faults (the body in ParseFaults syntax; empty clears, a bad
//     entry is a 400 naming it), POST /admin/reset (see Server.Reset),
//     GET /healthz. Admin endpoints need no API key.
//
// With Config.APIKey set, /v1/ endpoints need "Authorization: Bearer KEY"
// and answer 401 invalid_api_key otherwise.
//
// # Directives
//
// Directives in the last user message force a behaviour for that content,
// deterministically:
//
//   - #fail:CODE answers every call with CODE.
//   - #fail-first:N:CODE answers the first N calls for this content (counted
//     per Key, from start or the last reset) with CODE, then succeeds.
//   - #retry-after:S sets the Retry-After of a #fail 429 or a random 429.
//   - #tools:NAME[,NAME...], #args:NAME:{json} and #tool-loop:NAME make a
//     request with tools call them; see Tools.
//
// A call carrying #fail or #fail-first is never given a random fault, so
// "#fail-first:2:500" is exactly two 500s then successes. An unknown code or
// a malformed directive is a 400 invalid_request_error naming it, so a typo
// is visible. Error bodies are OpenAI's {"error":{"message","type","param",
// "code"}}; null code and param where OpenAI sends null.
//
//	CODE      status  response
//	400       400     type invalid_request_error, code null
//	401       401     type invalid_request_error, code invalid_api_key
//	403       403     type permission_error, code permission_denied
//	404       404     type invalid_request_error, code model_not_found, param model
//	429       429     type requests, code rate_limit_exceeded,
//	                  Retry-After: S, x-ratelimit-reset-requests: Ss
//	quota     429     type and code insufficient_quota, no Retry-After
//	500       500     type server_error
//	502       502     type server_error, JSON body
//	503       503     type server_error, "Service Unavailable."
//	504       504     type server_error
//	529       529     type overloaded_error (Anthropic's overload), JSON body
//	html502   502     nginx's HTML "502 Bad Gateway" page, text/html
//	overflow  400     code context_length_exceeded, OpenAI's message with
//	                  limit = half the prompt tokens, and the prompt tokens
//	filter    400     code content_filter, param prompt, content policy message
//	badjson   200     a chat completion whose content is "mock:<key> not json",
//	                  even when JSON was asked
//	empty     200     a chat completion with empty content
//	html200   200     an HTML sign-in page, text/html
//	timeout   -       no answer: held until the client gives up or the
//	                  server is closed, then the connection is dropped
//	reset     -       the connection is closed (TCP RST) without a response
//	length    200     the first half of the reply, finish_reason "length"
//	nousage   200     the reply, with no usage object (as some self-hosted
//	                  servers and proxies answer); stats still count its
//	                  tokens
//	schemamiss 200    a chat completion whose content is SchemaMissReply,
//	                  {"unexpected":true}: valid JSON that misses a
//	                  json_schema request's schema (any schema requiring a
//	                  property or forbidding others, as strict ones do), has
//	                  no "reply" for json_object, and is plain text that
//	                  does not carry the key otherwise
//
// DESIGN.md names 400 401 404 429 500 503 529 html502 and timeout; 403,
// 502, 504, quota, overflow, filter, badjson, empty, html200, reset,
// length, nousage and schemamiss are extensions. Each code is also valid in
// the random fault mix. Embedding requests answer them as described under
// Embeddings.
//
// # Tools
//
// A request may carry OpenAI's tools, tool_choice and parallel_tool_calls,
// and messages with tool_calls and tool replies. They are validated as
// OpenAI does: each tool is {"type":"function","function":{"name",...}}
// with a name matching ^[a-zA-Z0-9_-]{1,64}$; tool_choice is "none",
// "auto", "required" or a named function among the tools; tool_choice and
// parallel_tool_calls need tools; an assistant message's tool calls have
// an id, type "function" and a name, and are followed by one tool message
// per id ("An assistant message with 'tool_calls' must be followed by tool
// messages responding to each 'tool_call_id'. The following tool_call_ids
// did not have response messages: ..."); a tool message answers a pending
// call of the assistant message before it, once ("Invalid parameter:
// messages with role 'tool' must be a response to a preceeding message
// with 'tool_calls'."). These rules hold with or without tools.
//
// In a request with tools, the directives of the last user message choose
// the answer; "the step" is the number of assistant messages with
// tool_calls after the last user message:
//
//   - #tools:NAME[,NAME...] at step 0: an assistant message with content
//     null and one tool call per NAME, in order, finish_reason "tool_calls".
//   - #tool-loop:NAME at every step: one call of NAME, so the loop never
//     finishes on its own (a client's step limit must end it).
//   - #args:NAME:{json} gives NAME's arguments: the JSON object after the
//     second colon, up to its matching closing brace, sent as written.
//     Otherwise the arguments are "{}". One #args per NAME counts, the first.
//   - At a step above 0 (without #tool-loop), whatever the directives: a
//     completion whose content is ToolReply of the tool results answering
//     the last assistant message with tool_calls, in the order of its
//     calls, i.e. "mock:" + Key(results joined by "|"), finish_reason
//     "stop", as a JSON answer when JSON is asked (as the plain reply is:
//     {"reply":...}, or made from the json_schema).
//
// Call ids are ToolCallID(Key(last user message), NAME, index, step):
// "call_" and the first 16 hex digits of the SHA-256 of those four joined
// by NUL bytes, index being the call's position in its message, so they
// repeat across runs and differ per step. tool_choice "none" suppresses the
// calls (the answer is then the plain reply, or the tool reply at a step
// above 0); "required", a named function and parallel_tool_calls are
// accepted and change nothing: the directives decide. A request without
// tools ignores these directives. A directive's NAME that is not among the
// request's tools, #tools together with #tool-loop, an #args whose NAME no
// #tools or #tool-loop calls and an #args whose JSON is invalid are 400s
// naming them.
//
// #fail and #fail-first, and random faults, apply to tool steps as to any
// call, before the tool answer: #fail-first:1:500 fails the first step of
// a conversation only, since its calls share the last user message. The
// content faults (badjson, empty, length, schemamiss) answer text in place
// of tool calls; nousage keeps the tool calls and drops usage. Prompt
// tokens are Counter.Messages of package tokens, as for any call; the
// completion tokens of tool calls are the tokens of the tool_calls array's
// JSON (what the answer carries, stable and growing with the arguments).
// Stats key every step under the last user message's Key.
//
// # Structured output
//
// A request whose response_format is {"type":"json_schema","json_schema":
// {"name",...,"schema":{...}}} is answered with a JSON value generated from
// the schema, compact, properties in the schema's order:
//
//   - const, else the first value of enum, wins wherever it appears.
//   - $ref to "#", "#/$defs/NAME", "#/definitions/NAME" (any JSON pointer
//     inside the schema) is followed; anyOf and oneOf take their first
//     branch that is not just {"type":"null"} (or the first); allOf with
//     one schema is that schema.
//   - type is the type given, the first non-null one of a type array, or
//     the one the keywords imply (properties or required: object, items or
//     minItems: array, a bound: number), else string.
//   - An object has every required property, or every listed property
//     when required is absent; a required name without a property schema
//     takes additionalProperties' schema when that is an object, else the
//     reply. No other property is added.
//   - A string is the reply text ("mock:" + Key, or the tool reply), cut to
//     maxLength or padded with "-" to minLength; pattern and format are
//     ignored.
//   - A number or integer is 0, or the value nearest 0 that the bounds
//     allow (minimum itself; just past an exclusive bound); multipleOf is
//     ignored. A boolean is true, a null null.
//   - An array has minItems values (none by default), from prefixItems (or
//     a tuple items) in order, then from items.
//
// A schema beyond these rules (not, allOf of several schemas, a $ref that
// leaves the document, the false schema, uniqueItems that copies would
// break, bounds no number fits, recursion or nesting deeper than 64, an
// answer of more than 10000 values) is answered {"reply":"mock:<key>"}, as
// is a json_schema without a schema. A json_schema format without its
// json_schema object is OpenAI's 400 "Missing required parameter:
// 'response_format.json_schema'." (param response_format.json_schema); a
// json_schema or schema that is not an object is a 400 too. name and
// strict are not checked. Content faults start from the generated value
// (length cuts it in half); schemamiss answers SchemaMissReply instead.
//
// # Embeddings
//
// POST /v1/embeddings takes OpenAI's request: model (required); input, a
// non-empty string or an array of 1 to MaxEmbeddingInputs (2048) non-empty
// strings; dimensions, 1 to MaxEmbeddingDimensions (32), default
// DefaultEmbeddingDimensions (8); encoding_format "float" (default) or
// "base64" (little-endian float32s, as OpenAI sends them). It answers
// {"object":"list","data":[{"object":"embedding","index":i,"embedding":
// [...]}],"model":...,"usage":{"prompt_tokens":N,"total_tokens":N}}, where
// vector i is Embedding(input[i], dimensions) and N sums Counter.Text of
// each input for the model. Token-array inputs are a 400 saying they are
// not supported. OpenAI's 400s (invalid_request_error, with param): no
// model; no input ("'input' is a required property"); an empty string, an
// empty array or a non-string element ("'$.input' is invalid. Please check
// the API reference: ..."); more than 2048 inputs ("Invalid 'input': array
// too long. ..."); dimensions out of range; an unknown encoding_format; more
// than MaxEmbeddingTokens (300000) tokens in all ("Requested N tokens, max
// 300000 tokens per request").
//
// API key, RPM/TPM (a request costs its prompt tokens), ContextLimit (per
// input: 400 context_length_exceeded, param input, "Invalid 'input[i]':
// This model's maximum context length is L tokens, however you requested M
// tokens. ..."), latency and the random fault mix apply as to chat
// completions, in the same order; a request draws one fault, or none.
//
// Directives in any input apply to the whole request, as one bad input
// fails a whole OpenAI request: the first input with #fail:CODE chooses the
// code; else the first #fail-first:N:CODE input still within its count
// (counted per input Key, apart from chat calls; every #fail-first input of
// a request counts it); #retry-after:S of the first input that has one sets
// a 429's Retry-After. A request with either directive draws no random
// fault. A malformed directive is a 400 "mockllm: input[i]: ...", param
// input. The codes answer as for chat, except:
//
//	400        400  "Invalid 'input[i]': the input was rejected (simulated
//	                by mockllm).", param input, i the input whose directive
//	                asked (a 400 drawn from the random mix is chat's)
//	overflow   400  the ContextLimit error for the directive's input (or
//	                the longest), limit half its tokens
//	badjson    200  application/json body "mock:<key> not json", key the
//	                directive's input's (or the first's)
//	empty      200  the list with "data": []
//	schemamiss 200  the body SchemaMissReply
//	nousage    200  the list without usage
//	length     200  the list: an embedding has nothing to cut
//
// # Random faults
//
// Config.Faults (and PUT /admin/faults, SetFaults) is a mix such as
// "429=0.05,500=0.02,timeout=0.01": each call without a #fail or #fail-first
// directive draws one fault, or none, from one seeded generator, so a run is
// reproducible for a given Seed and call order.
//
// # Limits
//
// Checks run in this order, and the first that fails answers: API key,
// request validity, RPM/TPM, ContextLimit, directives, random faults (for
// embeddings too).
// Latency (Config.Latency) delays every answer, errors included, except
// timeout; a client that gives up during it is counted as "canceled".
//
// RPM and TPM are enforced over a sliding 60 s window of admitted calls,
// those that passed the check, whatever their outcome afterwards (a
// #fail:500 call spends the budget as a real one would). A call's TPM cost
// is its prompt tokens plus the completion tokens of its success reply (or
// tool calls); the reply is known before answering, so the charge is exact
// and max_tokens is not reserved. A call over a limit gets a 429 rate_limit_exceeded (type
// "requests" for RPM, "tokens" for TPM) whose Retry-After is the whole
// seconds, rounded up, until enough of the window has expired for it to
// pass, at least 1 and at least Config.RetryAfter. A call whose cost alone
// exceeds TPM gets OpenAI's 429 "Request too large" without Retry-After.
// Rejected calls are not charged.
//
// ContextLimit answers a prompt of more tokens than the limit with 400
// context_length_exceeded and OpenAI's message: "This model's maximum
// context length is L tokens. However, your messages resulted in M tokens.
// Please reduce the length of the messages."
//
// # Stats
//
// Stats (and GET /admin/stats) count calls, outcomes by status, calls by
// reply key, and tokens of successful calls; see Stats. calls, by_status,
// by_content, tokens_in and tokens_out are about chat completions only;
// embedding requests have their own embedding_calls, embedding_inputs,
// embedding_by_status, embedding_by_content (requests per input Key) and
// embedding_tokens. Outcomes are
// recorded before the response is written, so a client that has its answer
// finds it counted. Stats and arrival times grow with every call until a
// reset; the simulator is for tests and demos, not for weeks of traffic.
//
// # Embedding the server
//
// Calls that end without a response (timeout, reset, and clients that give
// up during latency) abort their handler with http.ErrAbortHandler, the
// net/http way to drop a request; a middleware that recovers panics must
// let it through. Server.Close releases held calls; Running (from Start)
// also stops the listener and waits for its goroutines.
//
// The simulator logs nothing; request bodies are never logged.
package simulator
