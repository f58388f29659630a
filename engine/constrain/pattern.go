package constrain

import (
	"fmt"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// formats are the string formats supported, as patterns that accept a subset of each format (no
// February 29, no leap seconds, a plain email address), so that every answer is valid.
var formats = map[string]string{
	"date":      `^` + datePattern + `$`,
	"time":      `^` + timePattern + `$`,
	"date-time": `^` + datePattern + `T` + timePattern + `$`,
	"uuid":      `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`,
	"ipv4":      `^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$`,
	"email":     `^[a-z0-9]([a-z0-9._-]{0,30}[a-z0-9])?@[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,2}\.[a-z]{2,6}$`,
}

const (
	datePattern = `\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))`
	timePattern = `([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)`
)

// pattern compiles a string schema's pattern (a regular expression in the RE2 syntax Go reads, which
// covers what JSON Schema patterns use) to the JSON string literals whose value it matches. As in
// JSON Schema the pattern is a search: without ^ and $ anything may come before and after it.
// Characters that JSON escapes (", \ and controls) are written escaped.
func (c *schemaCompiler) pattern(expr, path string) (elem, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return elem{}, c.fail(path, "pattern", "pattern %q does not parse: %v", expr, err)
	}
	re = re.Simplify()
	begin, end := false, false
	if re.Op == syntax.OpConcat && len(re.Sub) > 0 {
		subs := re.Sub
		if k := subs[0].Op; k == syntax.OpBeginText || k == syntax.OpBeginLine {
			begin, subs = true, subs[1:]
		}
		if n := len(subs); n > 0 && (subs[n-1].Op == syntax.OpEndText || subs[n-1].Op == syntax.OpEndLine) {
			end, subs = true, subs[:n-1]
		}
		re = &syntax.Regexp{Op: syntax.OpConcat, Sub: subs}
	}
	body, err := c.regexp(re, path)
	if err != nil {
		return elem{}, err
	}
	anyChars := c.repeat("chars", c.char(), nil, 0, -1)
	var parts [][]elem
	parts = append(parts, lit(`"`))
	if !begin {
		parts = append(parts, anyChars)
	}
	parts = append(parts, body)
	if !end {
		parts = append(parts, anyChars)
	}
	parts = append(parts, lit(`"`))
	return c.b.ruleOf("pattern", seq(parts...)), nil
}

// regexp compiles one node of a parsed pattern.
func (c *schemaCompiler) regexp(re *syntax.Regexp, path string) ([]elem, error) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return nil, nil
	case syntax.OpLiteral:
		var out []elem
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				var alts [][]elem
				for f := r; ; {
					alts = append(alts, jsonEscapes(f)...)
					if f = unicode.SimpleFold(f); f == r {
						break
					}
				}
				out = append(out, c.b.ruleOf("fold", alts...))
				continue
			}
			out = append(out, c.b.ruleOf("char", jsonEscapes(r)...))
		}
		return out, nil
	case syntax.OpCharClass:
		return []elem{c.runeClass(re.Rune)}, nil
	case syntax.OpAnyCharNotNL:
		return []elem{c.runeClass([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune})}, nil
	case syntax.OpAnyChar:
		return []elem{c.runeClass([]rune{0, utf8.MaxRune})}, nil
	case syntax.OpCapture:
		return c.regexp(re.Sub[0], path)
	case syntax.OpConcat:
		var out []elem
		for _, s := range re.Sub {
			e, err := c.regexp(s, path)
			if err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
		return out, nil
	case syntax.OpAlternate:
		var alts [][]elem
		for _, s := range re.Sub {
			e, err := c.regexp(s, path)
			if err != nil {
				return nil, err
			}
			alts = append(alts, e)
		}
		return []elem{c.b.ruleOf("alt", alts...)}, nil
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		sub, err := c.regexp(re.Sub[0], path)
		if err != nil {
			return nil, err
		}
		var lo, hi int
		switch re.Op {
		case syntax.OpStar:
			lo, hi = 0, -1
		case syntax.OpPlus:
			lo, hi = 1, -1
		case syntax.OpQuest:
			lo, hi = 0, 1
		default:
			lo, hi = re.Min, re.Max
		}
		if lo > maxRepeatSpan || hi > maxRepeatSpan {
			return nil, c.fail(path, "pattern", "pattern repetition {%d,%d} is above the %d this server supports", lo, hi, maxRepeatSpan)
		}
		return c.repeat("rep", c.b.ruleOf("item", sub), nil, lo, hi), nil
	}
	return nil, c.fail(path, "pattern", "pattern operator %v is not supported (anchors only at the ends; no word boundaries)", re.Op)
}

// jsonEscapes are the ways r may appear inside a JSON string, as alternatives: as itself, or escaped
// where JSON requires it (a short escape where there is one, and \u00XX in either case of hex).
func jsonEscapes(r rune) [][]elem {
	short := map[rune]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}
	if r >= 0x20 && r != '"' && r != '\\' {
		return [][]elem{lit(string(r))}
	}
	var out [][]elem
	if s, ok := short[r]; ok {
		out = append(out, lit(s))
	}
	return append(out, lit(fmt.Sprintf(`\u%04x`, r)), lit(fmt.Sprintf(`\u%04X`, r)))
}

// runeClass is one character of the ranges (pairs lo, hi) as it appears in a JSON string.
func (c *schemaCompiler) runeClass(ranges []rune) elem {
	var alts [][]elem
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		// The characters JSON escapes, one by one; the rest as UTF-8 ranges.
		for r := lo; r <= hi && r < 0x20; r++ {
			alts = append(alts, jsonEscapes(r)...)
		}
		for _, r := range []rune{'"', '\\'} {
			if lo <= r && r <= hi {
				alts = append(alts, jsonEscapes(r)...)
			}
		}
		for _, span := range [][2]rune{{0x20, '"' - 1}, {'"' + 1, '\\' - 1}, {'\\' + 1, utf8.MaxRune}} {
			if a, b := max(lo, span[0]), min(hi, span[1]); a <= b {
				alts = append(alts, utf8Ranges(a, b)...)
			}
		}
	}
	if len(alts) == 0 {
		return c.b.ruleOf("never", lit("\xff")) // no JSON text holds 0xFF: nothing matches
	}
	return c.b.ruleOf("class", alts...)
}
