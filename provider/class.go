package provider

// Class is a stable failure class (DESIGN.md, "Error classes").
type Class string

// The classes. Their strings never change once shipped.
const (
	RateLimited     Class = "rate_limited"
	Quota           Class = "quota"
	Overloaded      Class = "overloaded"
	ServerError     Class = "server_error"
	Timeout         Class = "timeout"
	Connection      Class = "connection"
	UpstreamInvalid Class = "upstream_invalid"
	InvalidOutput   Class = "invalid_output"
	ContextOverflow Class = "context_overflow"
	BadRequest      Class = "bad_request"
	Auth            Class = "auth"
	NotFound        Class = "not_found"
	ContentFilter   Class = "content_filter"
	Expired         Class = "expired"
	Cancelled       Class = "cancelled"

	// Agent items' classes: a tool that kept failing, a loop past
	// --max-steps, a transcript past --max-transcript-bytes, a person who
	// did not answer in time.
	ToolError    Class = "tool_error"
	MaxSteps     Class = "max_steps"
	TooLarge     Class = "too_large"
	InputTimeout Class = "input_timeout"
)

// Classes lists every class, in the order of DESIGN.md's table.
var Classes = []Class{
	RateLimited, Quota, Overloaded, ServerError, Timeout, Connection, UpstreamInvalid,
	InvalidOutput, ContextOverflow, BadRequest, Auth, NotFound, ContentFilter, Expired, Cancelled,
}

// AgentClasses are the classes of agent items' own failures, which Classify
// never returns: they come from the loop, not from a provider call.
var AgentClasses = []Class{ToolError, MaxSteps, TooLarge, InputTimeout}

// Retryable reports whether a failure of this class is worth another
// attempt. ContextOverflow is retried only after truncation, which the caller
// decides.
func (c Class) Retryable() bool {
	switch c {
	case RateLimited, Overloaded, ServerError, Timeout, Connection, UpstreamInvalid, InvalidOutput:
		return true
	}
	return false
}

// FeedsBreaker reports whether a failure of this class says the provider,
// not the item, is in trouble: the fleet-wide breaker counts these.
func (c Class) FeedsBreaker() bool {
	switch c {
	case Quota, Overloaded, ServerError, Connection, Auth:
		return true
	}
	return false
}

// Valid reports whether c is one of the known classes.
func (c Class) Valid() bool {
	for _, k := range Classes {
		if k == c {
			return true
		}
	}
	for _, k := range AgentClasses {
		if k == c {
			return true
		}
	}
	return false
}
