// Package jobs is the producer side of llmfleet: submitting a file of items
// as a job (first run and resume are one operation), reading its status,
// waiting for it, exporting its results and failures, cancelling and
// deleting it. cmd/producer is a thin CLI over it, and the embedded mode
// drives the same functions.
//
// Every operation reads and writes job state through checkpoint, never by
// asking asynq whether an item is done: asynq only carries the work.
package jobs
