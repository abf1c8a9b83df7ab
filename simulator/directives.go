package simulator

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Directive syntax, found anywhere in the last user message.
var (
	reFail       = regexp.MustCompile(`#fail:([A-Za-z0-9]+)`)
	reFailFirst  = regexp.MustCompile(`#fail-first:([0-9]+):([A-Za-z0-9]+)`)
	reRetryAfter = regexp.MustCompile(`#retry-after:([0-9]+)`)
)

// directives are the directives of one message. The first occurrence of
// each kind counts; #fail wins over #fail-first.
type directives struct {
	fail          string // #fail:CODE
	failFirst     string // #fail-first:N:CODE
	failFirstN    int
	retryAfter    int // #retry-after:S
	hasRetryAfter bool
}

// parseDirectives reads the directives of content. A directive with an
// unknown code or a malformed one is an error, so a typo in a test input is
// a visible 400 rather than a silent success.
func parseDirectives(content string) (directives, error) {
	var d directives
	if !strings.Contains(content, "#") {
		return d, nil
	}
	if m := reFail.FindStringSubmatch(content); m != nil {
		if !IsCode(m[1]) {
			return d, fmt.Errorf("unknown code %q in directive %q", m[1], m[0])
		}
		d.fail = m[1]
	} else if strings.Contains(content, "#fail:") {
		return d, fmt.Errorf("malformed directive #fail: want #fail:CODE")
	}
	if m := reFailFirst.FindStringSubmatch(content); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return d, fmt.Errorf("bad count in directive %q", m[0])
		}
		if !IsCode(m[2]) {
			return d, fmt.Errorf("unknown code %q in directive %q", m[2], m[0])
		}
		d.failFirst, d.failFirstN = m[2], n
	} else if strings.Contains(content, "#fail-first:") {
		return d, fmt.Errorf("malformed directive #fail-first: want #fail-first:N:CODE")
	}
	if m := reRetryAfter.FindStringSubmatch(content); m != nil {
		s, err := strconv.Atoi(m[1])
		if err != nil {
			return d, fmt.Errorf("bad seconds in directive %q", m[0])
		}
		d.retryAfter, d.hasRetryAfter = s, true
	} else if strings.Contains(content, "#retry-after:") {
		return d, fmt.Errorf("malformed directive #retry-after: want #retry-after:SECONDS")
	}
	return d, nil
}
