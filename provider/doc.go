// Package provider calls an OpenAI-compatible chat completions API through
// go-openai and turns every outcome into a classified error.
//
// go-openai was chosen (DESIGN.md names it) because it speaks every
// OpenAI-compatible server (OpenAI, Azure, vLLM, Ollama, LiteLLM) with one
// request type. It neither retries nor sets an HTTP timeout, and it drops the
// response headers of errors, so this package:
//
//   - gives it an HTTP client tuned for the worker's concurrency, with no
//     client-wide timeout: the caller's context bounds each attempt;
//   - wraps the client's Do to capture, per request, the status, the headers
//     (Retry-After and friends are read from them) and the head of the body
//     (for 2xx answers that are not JSON or carry an error);
//   - maps every outcome to one Class in Classify, the one function that
//     knows the error table of DESIGN.md.
//
// Classes are stable strings used in results, failures, metrics and replay
// filters. Provider bodies are truncated and scrubbed of API keys before they
// become a reason, because reasons are stored and shown.
package provider
