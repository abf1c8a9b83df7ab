package simulator

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Fault codes: what a directive or the random fault mix makes a call do.
// The first nine are DESIGN.md's; the rest are extensions (see the package
// doc for the exact responses).
const (
	Code400      = "400"
	Code401      = "401"
	Code403      = "403"
	Code404      = "404"
	Code429      = "429"
	Code500      = "500"
	Code502      = "502"
	Code503      = "503"
	Code504      = "504"
	Code529      = "529"
	CodeHTML502  = "html502"
	CodeTimeout  = "timeout"
	CodeQuota    = "quota"
	CodeOverflow = "overflow"
	CodeFilter   = "filter"
	CodeBadJSON  = "badjson"
	CodeEmpty    = "empty"
	CodeHTML200  = "html200"
	CodeReset    = "reset"
	CodeLength   = "length"
	CodeNoUsage  = "nousage"
	// CodeSchemaMiss answers 200 with SchemaMissReply: valid JSON that
	// misses the request's schema.
	CodeSchemaMiss = "schemamiss"
)

// SchemaMissReply is the content of a schemamiss answer to a chat
// completion, and the body of one to an embedding request: valid JSON that
// carries none of what was asked (it misses every json_schema that
// requires a property or forbids additional ones, as strict schemas do).
const SchemaMissReply = `{"unexpected":true}`

var codes = []string{
	Code400, Code401, Code403, Code404, Code429, Code500, Code502, Code503, Code504, Code529,
	CodeHTML502, CodeTimeout, CodeQuota, CodeOverflow, CodeFilter, CodeBadJSON, CodeEmpty,
	CodeHTML200, CodeReset, CodeLength, CodeNoUsage, CodeSchemaMiss,
}

// Codes returns every fault code, in documentation order.
func Codes() []string {
	return slices.Clone(codes)
}

// IsCode reports whether code is a fault code.
func IsCode(code string) bool {
	return slices.Contains(codes, code)
}

// Faults is a random fault mix: each call without a #fail or #fail-first
// directive gets fault CODE with its probability, and succeeds with the
// remaining probability. The zero value injects nothing. Build one with
// ParseFaults; a Faults value is immutable and always valid.
type Faults struct {
	entries []fault
}

type fault struct {
	code string
	p    float64
}

// ParseFaults parses a comma-separated list of CODE=probability pairs such as
// "429=0.05,500=0.02,html502=0.01". Probabilities are in [0, 1] and sum to at
// most 1; each code appears once. Errors name the bad entry. An empty string
// is the empty mix.
func ParseFaults(s string) (Faults, error) {
	var f Faults
	sum := 0.0
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		code, ps, ok := strings.Cut(entry, "=")
		code, ps = strings.TrimSpace(code), strings.TrimSpace(ps)
		if !ok || code == "" || ps == "" {
			return Faults{}, fmt.Errorf("fault entry %q: want CODE=probability", entry)
		}
		if !IsCode(code) {
			return Faults{}, fmt.Errorf("fault entry %q: unknown code %q (known: %s)", entry, code, strings.Join(codes, " "))
		}
		p, err := strconv.ParseFloat(ps, 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 1 {
			return Faults{}, fmt.Errorf("fault entry %q: probability must be a number in [0, 1]", entry)
		}
		if slices.ContainsFunc(f.entries, func(e fault) bool { return e.code == code }) {
			return Faults{}, fmt.Errorf("fault entry %q: code %q given twice", entry, code)
		}
		sum += p
		if sum > 1+1e-9 {
			return Faults{}, fmt.Errorf("fault entry %q: probabilities sum to %g, above 1", entry, sum)
		}
		f.entries = append(f.entries, fault{code: code, p: p})
	}
	return f, nil
}

// String returns the mix in ParseFaults syntax ("" for no faults).
func (f Faults) String() string {
	parts := make([]string, len(f.entries))
	for i, e := range f.entries {
		parts[i] = e.code + "=" + strconv.FormatFloat(e.p, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// IsZero reports whether the mix injects nothing.
func (f Faults) IsZero() bool {
	return len(f.entries) == 0
}

// pick maps r, uniform in [0, 1), to a code, or "" for no fault.
func (f Faults) pick(r float64) string {
	acc := 0.0
	for _, e := range f.entries {
		acc += e.p
		if r < acc {
			return e.code
		}
	}
	return ""
}
