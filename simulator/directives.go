package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Directive syntax, found anywhere in the last user message.
var (
	reFail       = regexp.MustCompile(`#fail:([A-Za-z0-9]+)`)
	reFailFirst  = regexp.MustCompile(`#fail-first:([0-9]+):([A-Za-z0-9]+)`)
	reRetryAfter = regexp.MustCompile(`#retry-after:([0-9]+)`)
	// Tool names as OpenAI allows them in a function definition.
	reTools    = regexp.MustCompile(`#tools:([A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*)`)
	reToolLoop = regexp.MustCompile(`#tool-loop:([A-Za-z0-9_-]+)`)
	reArgs     = regexp.MustCompile(`#args:([A-Za-z0-9_-]+):`)
)

// directives are the directives of one message. The first occurrence of
// each kind counts; #fail wins over #fail-first.
type directives struct {
	fail          string // #fail:CODE
	failFirst     string // #fail-first:N:CODE
	failFirstN    int
	retryAfter    int // #retry-after:S
	hasRetryAfter bool
	tools         []string          // #tools:NAME,...
	toolLoop      string            // #tool-loop:NAME
	args          map[string]string // #args:NAME:{json}, NAME -> the JSON text
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
	if err := d.parseTools(content); err != nil {
		return d, err
	}
	return d, nil
}

// parseTools reads #tools, #tool-loop and #args. Names are checked against
// the request's tools later (see call.plan): here only the syntax, and that
// each #args belongs to a tool the directives call.
func (d *directives) parseTools(content string) error {
	if m := reTools.FindStringSubmatchIndex(content); m != nil {
		// "#tools:a, b" would silently call a alone.
		if m[1] < len(content) && content[m[1]] == ',' {
			return fmt.Errorf("malformed directive %q: want #tools:NAME[,NAME...] without spaces", content[m[0]:m[1]+1])
		}
		d.tools = strings.Split(content[m[2]:m[3]], ",")
	} else if strings.Contains(content, "#tools:") {
		return errors.New("malformed directive #tools: want #tools:NAME[,NAME...]")
	}
	if m := reToolLoop.FindStringSubmatch(content); m != nil {
		d.toolLoop = m[1]
	} else if strings.Contains(content, "#tool-loop:") {
		return errors.New("malformed directive #tool-loop: want #tool-loop:NAME")
	}
	if d.tools != nil && d.toolLoop != "" {
		return errors.New("directives #tools and #tool-loop exclude each other")
	}
	return d.parseArgs(content)
}

// parseArgs reads every #args:NAME:{json}; the first one of a NAME counts.
func (d *directives) parseArgs(content string) error {
	ms := reArgs.FindAllStringSubmatchIndex(content, -1)
	if len(ms) < strings.Count(content, "#args:") {
		return errors.New("malformed directive #args: want #args:NAME:{JSON object}")
	}
	for _, m := range ms {
		name, directive := content[m[2]:m[3]], content[m[0]:m[1]]
		obj, err := jsonObjectPrefix(content[m[1]:])
		if err != nil {
			return fmt.Errorf("directive %q: %w", directive, err)
		}
		if !slices.Contains(d.tools, name) && d.toolLoop != name {
			return fmt.Errorf("directive %q: no #tools or #tool-loop directive calls %q", directive, name)
		}
		if d.args == nil {
			d.args = map[string]string{}
		}
		if _, seen := d.args[name]; !seen {
			d.args[name] = obj
		}
	}
	return nil
}

// jsonObjectPrefix returns the JSON object s starts with, up to its matching
// closing brace (braces inside strings do not count), so that text may
// follow it in the message.
func jsonObjectPrefix(s string) (string, error) {
	if !strings.HasPrefix(s, "{") {
		return "", errors.New("want a JSON object after the name")
	}
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case inString:
			escaped = c == '\\'
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				obj := s[:i+1]
				var v any
				if err := json.Unmarshal([]byte(obj), &v); err != nil {
					return "", fmt.Errorf("invalid JSON %s: %w", obj, err)
				}
				return obj, nil
			}
		}
	}
	return "", errors.New("unterminated JSON object")
}
