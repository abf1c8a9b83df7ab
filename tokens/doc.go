// Package tokens counts tokens offline, the way OpenAI's API counts them.
//
// # Why github.com/tiktoken-go/tokenizer
//
// It is a pure-Go port of OpenAI's tiktoken that ships the real BPE
// vocabularies (o200k_base, cl100k_base, ...) inside the module: counts match
// what the API bills, nothing is downloaded at run time (workers and the
// simulator run offline and in containers without a cache directory), and
// there is no cgo. Loading a vocabulary and compiling its split expression
// costs tens of milliseconds and megabytes, so each encoding is loaded once
// per process and shared; the loaded codecs are safe for concurrent use.
//
// # Models and the fallback
//
// ForModel picks the encoding from the model name:
//
//   - cl100k_base: gpt-4 and gpt-4-* (gpt-4-turbo, gpt-4-32k, ...),
//     gpt-3.5-turbo (and Azure's gpt-35-turbo), text-embedding-3-* and
//     text-embedding-ada-002.
//   - o200k_base: everything else, which covers gpt-4o, gpt-4.1, gpt-4.5,
//     gpt-5, the o1/o3/o4 reasoning families and later models.
//
// Unknown models (including other providers' models behind an
// OpenAI-compatible API, such as Llama served by vLLM) fall back to
// o200k_base: OpenAI's current encoding, and a reasonable estimate for any
// modern BPE vocabulary. A fine-tuned model ("ft:gpt-4o-mini:org::id") counts
// like its base model, and a router prefix ("openai/gpt-4o") is ignored.
//
// # Chat messages
//
// Messages follows OpenAI's published recipe for chat models: every message
// costs 3 tokens of framing plus the tokens of its role, content and name
// (1 more token when a name is set), and every reply is primed with 3 tokens.
// The result is the prompt_tokens the API reports for a plain chat request
// (tools and images are not counted).
//
// # Fitting a prompt into a context window
//
// Fit shrinks a chat that is over a token limit (the model's context window
// minus the tokens reserved for the reply) before it is sent, following the
// classic recipe (keep the instructions, drop the oldest turns, trim what is
// left), counted with Messages so the chat overhead is included:
//
//  1. A chat that fits is returned unchanged.
//  2. System and developer messages are always kept, and so is the last
//     exchange: the last user message and every message after it
//     (assistant and tool replies). The other messages are dropped, oldest
//     first, one at a time, until the rest fits.
//  3. If it is still over, the longest user message left is trimmed by
//     tokens, keeping its beginning and ending it with TruncationMarker
//     (" [truncated]"), whose tokens count against the limit; if trimming
//     it to nothing is not enough, the next longest is trimmed, and so on.
//  4. If it still cannot fit (the instructions alone are over the limit, or
//     the last exchange holds a long reply, which is never trimmed), Fit
//     returns ErrCannotFit, and an error that gives both counts.
//
// Kept messages keep their order. Where this improves on the recipe:
//
//   - Counts are tokens of the model's real encoding with the framing the
//     API bills, not words or characters, and the marker is counted; the
//     result is recounted, so After is exact and never over the limit.
//   - A cut never splits a character: a token can end inside a CJK
//     character or an emoji, and the cut moves back to the character's start,
//     so a trimmed message is always valid UTF-8.
//   - A user turn sent as several consecutive user messages (instructions,
//     then a document) is one exchange: the last exchange starts at the
//     first of them, so the instructions are not dropped to make room for
//     the document; the document, the longest, is trimmed instead.
//   - A chat without user messages keeps its last message as its exchange
//     (a tool reply with the call it answers, and that call's other replies).
//   - Trimming a 100k-token message encodes only the beginning it keeps
//     (plus a margin), not the whole text, after the one count every call
//     makes.
package tokens
