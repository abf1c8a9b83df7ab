// Package models knows the limits and list prices of common models: how many
// tokens fit in a model's context window, how many it may write, and what a
// million input and output tokens cost.
//
// # The built-in table
//
// Builtin holds OpenAI's models as published in OpenAI's model and pricing
// pages as of August 2025 (gpt-4o, gpt-4o-mini, gpt-4.1 and its mini and
// nano, gpt-4-turbo, gpt-4, gpt-3.5-turbo, o1, o1-mini, o3, o3-mini,
// o4-mini, gpt-5 and its mini and nano) plus "mock", the project's simulator
// (8192 tokens of context, 4096 of output, free). Prices are standard-tier
// list prices in US dollars per million tokens, without cached-input or batch
// discounts.
//
// Prices and limits are estimates: they change, they may already be outdated
// when you read this, and a cost computed from them is an estimate of what
// the provider bills, never the bill. Override them per model with With and
// a user file read by Load:
//
//	{
//	  "gpt-4o":      {"input_usd_per_mtok": 2.00},
//	  "my-llama-70b": {"context_window": 131072, "max_output": 8192}
//	}
//
// A field that is zero (or absent) in an override keeps the built-in value;
// a consequence is that an override cannot set a built-in price to zero, for
// that give the model another name.
//
// # Looking a model up
//
// Lookup tries the exact name first, then the name without a fine-tune
// wrapper ("ft:gpt-4o-mini-2024-07-18:org::id" is gpt-4o-mini-2024-07-18)
// and a router prefix ("openai/gpt-4o" is gpt-4o), lower-cased, and then the
// longest table key that is a prefix of that name followed by '-' or its
// end: a dated snapshot ("gpt-4o-2024-08-06") gets its family's entry, and
// "gpt-4o-mini-2024-07-18" gets gpt-4o-mini, not gpt-4o. "gpt-4.5-preview"
// does not match gpt-4, the character after the key is '.'.
//
// A model Lookup does not know (ok false) has no known limits and no price:
// callers skip pre-flight truncation for it and rely on the provider's
// context_length_exceeded error, and report no cost estimate. A zero
// ContextWindow, MaxOutput or price in a table entry means the same for that
// field: unknown.
package models
