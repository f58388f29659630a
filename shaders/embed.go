// Package shaders holds smolchat's WGSL compute kernels, one job per file, and the tiny preprocessor that
// assembles a kernel variant from them.
//
// WGSL has no #include and no preprocessor, so the files carry three directives inside line comments, which
// keeps every file close to plain WGSL:
//
//	//#include "name.wgsl"   replaced by that file (each file at most once per module)
//	//#if NAME  //#else  //#endif
//	                         keep lines when the define NAME is set (non-empty and not "0" or "false")
//	{{NAME}}                 replaced by the define's value anywhere in a kept line
//
// Defines are the variant knobs: weight type, workgroup size, rows per workgroup, subgroup reduction.
package shaders

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.wgsl
var files embed.FS

// Defines maps a define's name to its value for one kernel variant.
type Defines map[string]string

func (d Defines) set(name string) bool {
	v := d[name]
	return v != "" && v != "0" && v != "false"
}

// Names lists the embedded shader files.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Raw returns a shader file as stored.
func Raw(name string) (string, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("shader %q: %w", name, err)
	}
	return string(b), nil
}

// Source assembles the kernel in file name with defs applied: includes resolved, conditional blocks
// chosen, {{NAME}} placeholders substituted. A placeholder without a define is an error, so a missing
// knob is caught before the WGSL compiler sees the text.
func Source(name string, defs Defines) (string, error) {
	return assemble(files, name, defs)
}

func assemble(fsys fs.FS, name string, defs Defines) (string, error) {
	p := &preprocessor{fsys: fsys, defs: defs, seen: map[string]bool{}}
	var out strings.Builder
	if err := p.file(name, &out, 0); err != nil {
		return "", err
	}
	return out.String(), nil
}

type preprocessor struct {
	fsys fs.FS
	defs Defines
	seen map[string]bool
}

// maxIncludeDepth stops include cycles; the once-per-module rule already prevents them.
const maxIncludeDepth = 8

func (p *preprocessor) file(name string, out *strings.Builder, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("shader %q: includes nested deeper than %d", name, maxIncludeDepth)
	}
	if p.seen[name] {
		return nil
	}
	p.seen[name] = true
	b, err := fs.ReadFile(p.fsys, name)
	if err != nil {
		return fmt.Errorf("shader %q: %w", name, err)
	}
	src := string(b)
	// Each #if pushes whether its lines are kept; a line is kept when every enclosing block is.
	type block struct{ keep, parentKeep, sawElse bool }
	var stack []block
	keeping := func() bool { return len(stack) == 0 || stack[len(stack)-1].keep }
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		where := func() string { return fmt.Sprintf("%s:%d", name, lineNo) }
		switch {
		case strings.HasPrefix(trimmed, "//#if "):
			cond := strings.TrimSpace(strings.TrimPrefix(trimmed, "//#if "))
			parent := keeping()
			stack = append(stack, block{keep: parent && p.defs.set(cond), parentKeep: parent})
			continue
		case trimmed == "//#else":
			if len(stack) == 0 || stack[len(stack)-1].sawElse {
				return fmt.Errorf("%s: //#else without //#if", where())
			}
			b := &stack[len(stack)-1]
			b.keep, b.sawElse = b.parentKeep && !b.keep, true
			continue
		case trimmed == "//#endif":
			if len(stack) == 0 {
				return fmt.Errorf("%s: //#endif without //#if", where())
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if !keeping() {
			continue
		}
		line, err := p.substitute(line)
		if err != nil {
			return fmt.Errorf("%s: %w", where(), err)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "//#include ") {
			inc := strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "//#include ")), `"`)
			if err := p.file(inc, out, depth+1); err != nil {
				return fmt.Errorf("%s: %w", where(), err)
			}
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("shader %q: %w", name, err)
	}
	if len(stack) != 0 {
		return fmt.Errorf("shader %q: %d unclosed //#if", name, len(stack))
	}
	return nil
}

func (p *preprocessor) substitute(line string) (string, error) {
	for {
		i := strings.Index(line, "{{")
		if i < 0 {
			return line, nil
		}
		j := strings.Index(line[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("unterminated placeholder in %q", line)
		}
		name := line[i+2 : i+j]
		v, ok := p.defs[name]
		if !ok {
			return "", fmt.Errorf("placeholder {{%s}} has no define", name)
		}
		line = line[:i] + v + line[i+j+2:]
	}
}
