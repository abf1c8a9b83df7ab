package input

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"
)

// templateFields returns the item fields a template reads from the item
// itself: .name and .name.sub where the dot is still the item (not inside
// range or with), and $.name anywhere. Knowing them before execution lets
// a missing field be reported by name, and a CSV header be checked once.
func templateFields(t *template.Template) []string {
	var names []string
	add := func(name string) {
		for _, n := range names {
			if n == name {
				return
			}
		}
		names = append(names, name)
	}
	var walk func(n parse.Node, root bool)
	walk = func(n parse.Node, root bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c, root)
			}
		case *parse.ActionNode:
			walk(n.Pipe, root)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c, root)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a, root)
			}
		case *parse.FieldNode:
			if root {
				add(n.Ident[0])
			}
		case *parse.ChainNode:
			walk(n.Node, root)
		case *parse.VariableNode:
			if n.Ident[0] == "$" && len(n.Ident) > 1 {
				add(n.Ident[1])
			}
		case *parse.IfNode:
			walk(n.Pipe, root)
			walk(n.List, root)
			walk(n.ElseList, root)
		case *parse.RangeNode:
			walk(n.Pipe, root)
			walk(n.List, false)
			walk(n.ElseList, root)
		case *parse.WithNode:
			walk(n.Pipe, root)
			walk(n.List, false)
			walk(n.ElseList, root)
		case *parse.TemplateNode:
			walk(n.Pipe, root)
		}
	}
	if t.Tree != nil {
		walk(t.Tree.Root, true)
	}
	return names
}

// render executes the template over an item's fields. A field the template
// reads but the item lacks is reported by name, before execution when the
// template reads it directly, else from the execution error.
func (r *Reader) render(fs *fieldSet, data func() (map[string]any, error)) (string, error) {
	var missing []string
	for _, f := range r.tmplFields {
		if !fs.has(f) {
			missing = append(missing, fmt.Sprintf("%q", f))
		}
	}
	if len(missing) > 0 {
		return "", missingFields(missing, "not in item (fields: "+listNames(fs.names)+")")
	}
	d, err := data()
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	var b bytes.Buffer
	if err := r.tmpl.Execute(&b, d); err != nil {
		if m := noEntry.FindStringSubmatch(err.Error()); m != nil {
			// The node names the whole path (.doc.title); the key alone
			// ("title") would read as a top-level field.
			name := m[2]
			if path := strings.TrimLeft(m[1], "$."); path != "" && strings.HasSuffix(path, "."+name) {
				name = path
			}
			return "", fmt.Errorf("template: field %q not in item (fields: %s)", name, listNames(fs.names))
		}
		return "", err // "template: prompt:1:2: executing ..."
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", errors.New("template rendered an empty prompt")
	}
	return b.String(), nil
}

// noEntry matches text/template's error for a missing map key.
var noEntry = regexp.MustCompile(`(?:at <([^>]*)>: )?map has no entry for key "([^"]*)"`)

// missingFields says which fields are missing: `template: field "a" ...` or
// `template: fields "a", "b" ...`.
func missingFields(quoted []string, where string) error {
	if len(quoted) == 1 {
		return fmt.Errorf("template: field %s %s", quoted[0], where)
	}
	return fmt.Errorf("template: fields %s %s", strings.Join(quoted, ", "), where)
}

// listNames joins field names for a message, shortened when there are many.
func listNames(names []string) string {
	const max = 20
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", … (%d more)", len(names)-max)
	}
	return strings.Join(names, ", ")
}
