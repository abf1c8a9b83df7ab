// Package tasks is llmfleet's wire contract: the asynq task type names, the
// task payloads and the item record that producers store and workers read.
//
// Everything here is read by processes of other versions (a producer of one
// release, workers of the next), so the invariants are:
//
//   - Type strings (TypeItem) and JSON field names never change once shipped;
//     new fields are added as optional.
//   - Payloads carry ids, never secrets and never the item itself: the item
//     lives in the job's checkpoint, so a replay with an edited input needs no
//     change to the queued task.
//   - A task's TaskID is derived from (job, item id) alone, so enqueueing the
//     same item twice conflicts in asynq instead of duplicating work.
//
// The package imports asynq but not go-openai: Item is the provider-neutral
// request a worker turns into a chat completion call.
package tasks
