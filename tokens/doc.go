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
package tokens
