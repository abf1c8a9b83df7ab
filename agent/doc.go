// Package agent holds what makes an item an agent run: the tools a job
// declares (run --tools FILE), the rule that says where a run stands, and
// the executors that run tool calls. The loop itself is the worker's
// (worker/agent.go): it needs the claim, the guards and the checkpoint, and
// this package needs none of them, so it stays testable on its own.
//
// # Tools
//
// A Tool is stored with the job's policy, so every worker sees the same
// set. It holds no secret: ${VAR} in a url or a header is expanded from the
// worker's environment when the call is made, and a header whose name says
// it is a credential (Authorization, *token*, *key*, ...) must be written
// as ${VAR}. A tool with a url is an HTTP tool; one without is a Go
// function the worker registers under its name (worker.Config.Tools);
// executor "human" and approval "always" wait for a person.
//
// Parameters are a JSON Schema, compiled and checked by package schema
// (draft 2020-12 unless the schema says otherwise; no $ref outside it).
//
// # Where a run stands
//
// Next reads the transcript (the item's messages and the committed steps)
// and says what follows: call the model, run the calls the model's last
// answer made that have no result yet, or finish. Because the transcript is
// all it reads, the attempt that follows a crash resumes exactly where the
// committed steps end.
//
// # Running a call
//
// Runner.Run checks the arguments against the tool's parameters (invalid
// ones go back to the model, which can correct itself, without a run),
// then runs the tool under its timeout. HTTP tools get a POST of
// {"job", "item", "call_id", "name", "arguments"} and the header
// Idempotency-Key, stable for the job, the item, the model step that made
// the call and the call id: a run repeated after a crash sends the same
// key. A 2xx body is the result ({"output": ...} or text); a 4xx goes back
// to the model; timeouts, 408, 429, 5xx and connection errors are retried
// with jittered backoff (at least a Retry-After) up to max_attempts, after
// which the item fails tool_error. Errors never quote an expanded url or
// header, so no secret reaches a reason or a log.
package agent
