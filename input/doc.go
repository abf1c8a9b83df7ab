// Package input turns a batch input file (JSONL or CSV) into accepted
// tasks.Item values, one at a time, and records every line it rejects with
// the line number and a message that says what is wrong.
//
// # Streaming
//
// A Reader never holds the whole input: Next parses one line (JSONL) or one
// record (CSV) per accepted item. What it keeps grows with the number of
// distinct ids only: a map from a 16-byte hash of the id to a 16-byte hash
// of the item's canonical encoding and the line that first used the id,
// enough to tell "same item again" from "same id, different content". A
// JSONL line over Options.MaxItemBytes is counted and discarded chunk by
// chunk, never buffered. encoding/csv reads a whole record before it can be
// measured, so a CSV record over the limit is held once and then rejected.
//
// # Items
//
// Every line gives one item or one rejection; nothing valid is lost because
// of a bad line elsewhere. The fields an item understands are id, prompt,
// messages, model, max_tokens, temperature, top_p, stop, seed,
// response_format, metadata, tools, tool_choice, parallel_tool_calls, and
// for embeddings input and dimensions;
// any other field is kept as a template input and in Item.Fields, for the
// failed-items CSV.
//
//   - id is kept verbatim; a JSON number keeps its literal text (1.50 stays
//     "1.50"). A missing, null or blank id is replaced by Item.DerivedID,
//     computed on the finished item (template, --system and --json-output
//     applied), so it is the same on every run and machine.
//   - prompt becomes one user message; messages are used as given. An item
//     has exactly one of them, unless Options.Template renders the user
//     message: then prompt is just another field (the template wins) and an
//     item with messages is rejected.
//   - Options.System is prepended as a system message, except to an item
//     whose own messages already start with one: the item's own system
//     message is the more specific instruction, and two system messages
//     would leave the model to guess which one counts.
//   - JSON null, and in CSV an empty cell, mean "absent" for every field;
//     Fields keeps such a value as "". Fields holds every input field of
//     the item, id included only when the input has one.
//   - A message has role, content (a string: content parts are rejected)
//     and optionally name, tool_calls (assistant messages) and tool_call_id
//     (tool messages); other keys (function_call, ...) are rejected rather
//     than silently dropped. An assistant message needs content or
//     tool_calls.
//
// # Agent items
//
// An item whose job has tools (Options.Tools, from run --tools FILE) may
// use them; in a job without tools every one of the following is rejected,
// and the message says to pass run --tools FILE.
//
//   - tools narrows the job's tools for the item: a non-empty JSON array of
//     distinct names, each one of the job's tools (in CSV also a
//     comma-separated list of names, each trimmed). Absent means all of the
//     job's tools.
//   - tool_choice is "none", "auto", "required" or
//     {"type":"function","function":{"name":NAME}}, NAME one of the item's
//     tools (the job's when the item names none). Item.ToolChoice holds it
//     as compact JSON, the object with its keys in that order. In CSV the
//     cell is the bare word or the JSON object.
//   - parallel_tool_calls is a boolean (in CSV true or false, any case).
//   - messages may carry earlier steps of the loop, by OpenAI's rules. An
//     assistant message's tool_calls is a non-empty array of {id, type:
//     "function", function: {name, arguments}}: id a non-empty string
//     unique within the item, name a non-empty string, arguments a string
//     kept as written (the model wrote it: it need not be valid JSON); its
//     content may then be null or missing. Every call must be answered,
//     before the next message that is not a tool message (or the end of
//     the messages), by exactly one tool message (tool_call_id the call's
//     id, content a string), in any order; a tool message answers a call of
//     the assistant message just before its run of tool messages, and of
//     no other. So an item may end with tool replies (the model answers
//     next) but not with an unanswered call. Errors name the message by its
//     index in the item's own messages (before Options.System is added).
//
// The names the messages' tool calls use are not checked against the
// job's tools: they are history, what the model asked for then.
//
// # Structured output, embeddings, OpenAI batch lines
//
//   - response_format may be {"type":"json_schema","json_schema":{"name",
//     "schema","strict"?,"description"?}}: the name follows OpenAI's rule
//     and the schema must compile (package schema); it is kept compact.
//     Options.Schema (run --schema FILE) gives every chat item that format,
//     over its own.
//   - With Options.Endpoint "embeddings" (run --endpoint embeddings) an
//     item is an embedding: input is a non-empty string or an array of up
//     to 2,048 non-empty strings (in CSV a cell is one input), dimensions a
//     positive integer; prompt, messages and the chat-only fields are
//     rejected. A chat item with only input is rejected with that hint.
//   - A JSONL line with custom_id is an OpenAI Batch API line, read as it
//     is: custom_id is the id, url /v1/chat/completions or /v1/embeddings
//     says what the item is, body is the request (its fields read as an
//     item's; max_completion_tokens is max_tokens; user, store and
//     encoding_format "float" change nothing and are dropped). Any other
//     url or method, a missing body, an unknown key, or a body field
//     llmfleet would not honour (n, logprobs, ...) is rejected by name.
//     Options.Format "openai-batch" requires every line to be one. Such
//     items are marked Batch: their provider responses are kept for export
//     --format openai-batch.
//
// # Duplicates
//
// An item whose id was already accepted with identical canonical content
// (tasks.Item.Canonical) is collapsed and counted in
// Stats.DuplicatesCollapsed; this covers an exact duplicate of an earlier
// line, which always parses to the same item. The same id with different
// content is rejected and the message names the line that first used it.
// A duplicate of a rejected line is rejected again, so every bad line is
// reported.
//
// # CSV
//
// The first non-blank row is the header; its names are trimmed and must be
// unique and non-empty. Problems that would reject every row (a bad header,
// no prompt or messages column without a template, a template field that is
// not a column) stop the read with a *FileError instead. Line numbers are
// those where a record starts, the header being line 1; a record of one
// blank cell is a blank line and skipped. The messages, response_format,
// stop, tools and tool_choice columns may hold JSON text; metadata is JSON
// text when it parses as JSON, else a string.
package input
