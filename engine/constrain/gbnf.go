package constrain

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// GBNFError is a grammar text this parser refuses: where (line and column) and why.
type GBNFError struct {
	Line, Col int
	Msg       string
}

func (e *GBNFError) Error() string {
	return fmt.Sprintf("grammar line %d column %d: %s", e.Line, e.Col, e.Msg)
}

// maxGBNFRepeat bounds {m,n} repetitions, which are expanded.
const maxGBNFRepeat = 256

// CompileGBNF compiles a grammar in llama.cpp's GBNF: rules `name ::= alternatives`, the start rule
// named root; "literals" and [character classes] (with ranges, ^ negation and \n \t \r \\ \" \] \xHH
// \uHHHH \UHHHHHHHH escapes), `.` for any character, rule names, ( groups ), and the postfix operators
// * + ? {m} {m,} {m,n}; # starts a comment. Characters are Unicode code points, matched as UTF-8.
func CompileGBNF(text string) (*Grammar, error) {
	p := &gbnfParser{src: text, b: newBuilder(), line: 1, col: 1}
	p.b.declare("root") // rule 0, the start
	defined := map[string]bool{}
	p.space()
	for p.pos < len(p.src) {
		name, line, col := p.ident(), p.line, p.col
		if name == "" {
			return nil, p.fail("expected a rule name")
		}
		p.space()
		if !strings.HasPrefix(p.src[p.pos:], "::=") {
			return nil, p.fail("expected ::= after rule name %q", name)
		}
		p.advance(3)
		if defined[name] {
			return nil, &GBNFError{line, col, fmt.Sprintf("rule %q is defined twice", name)}
		}
		defined[name] = true
		alts, err := p.alternatives(false)
		if err != nil {
			return nil, err
		}
		p.b.define(p.b.declare(name), alts...)
	}
	if !defined["root"] {
		return nil, &GBNFError{p.line, p.col, "the grammar has no root rule"}
	}
	return p.b.build()
}

type gbnfParser struct {
	src            string
	pos, line, col int
	b              *builder
}

func (p *gbnfParser) fail(format string, args ...any) error {
	return &GBNFError{p.line, p.col, fmt.Sprintf(format, args...)}
}

func (p *gbnfParser) advance(n int) {
	for _, c := range p.src[p.pos : p.pos+n] {
		if c == '\n' {
			p.line, p.col = p.line+1, 1
		} else {
			p.col++
		}
	}
	p.pos += n
}

// space skips blanks, newlines and comments.
func (p *gbnfParser) space() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.advance(1)
		case c == '#':
			n := strings.IndexByte(p.src[p.pos:], '\n')
			if n < 0 {
				n = len(p.src) - p.pos
			}
			p.advance(n)
		default:
			return
		}
	}
}

func isIdent(c byte) bool {
	return c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *gbnfParser) ident() string {
	n := 0
	for p.pos+n < len(p.src) && isIdent(p.src[p.pos+n]) {
		n++
	}
	s := p.src[p.pos : p.pos+n]
	p.advance(n)
	return s
}

// atRuleStart reports that the input continues with `name ::=`, which ends the current rule.
func (p *gbnfParser) atRuleStart() bool {
	n := 0
	for p.pos+n < len(p.src) && isIdent(p.src[p.pos+n]) {
		n++
	}
	if n == 0 {
		return false
	}
	rest := strings.TrimLeft(p.src[p.pos+n:], " \t\r\n")
	return strings.HasPrefix(rest, "::=")
}

// alternatives parses `seq | seq | …` up to the next rule (or the closing parenthesis when nested).
func (p *gbnfParser) alternatives(nested bool) ([][]elem, error) {
	var alts [][]elem
	for {
		seq, err := p.sequence(nested)
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == '|' {
			p.advance(1)
			continue
		}
		return alts, nil
	}
}

// sequence parses items up to |, ), the next rule, or the end.
func (p *gbnfParser) sequence(nested bool) ([]elem, error) {
	out := []elem{}
	for {
		p.space()
		if p.pos >= len(p.src) {
			if nested {
				return nil, p.fail("unclosed (")
			}
			return out, nil
		}
		c := p.src[p.pos]
		if c == '|' || c == ')' && nested {
			return out, nil
		}
		if !nested && p.atRuleStart() {
			return out, nil
		}
		start := len(out)
		switch {
		case c == '"':
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			out = append(out, lit...)
		case c == '[':
			e, err := p.charClass()
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		case c == '.':
			p.advance(1)
			out = append(out, p.b.ruleOf("%any-char", utf8Ranges(0, utf8.MaxRune)...))
		case c == '(':
			p.advance(1)
			alts, err := p.alternatives(true)
			if err != nil {
				return nil, err
			}
			p.space()
			if p.pos >= len(p.src) || p.src[p.pos] != ')' {
				return nil, p.fail("expected )")
			}
			p.advance(1)
			out = append(out, p.b.ruleOf("%group", alts...))
		case isIdent(c):
			out = append(out, ref(p.b.declare(p.ident())))
		default:
			return nil, p.fail("unexpected %q", c)
		}
		item := slices.Clone(out[start:]) // out is appended to below; a rule keeps its own copy
		repeated, err := p.postfix(item)
		if err != nil {
			return nil, err
		}
		out = append(out[:start], repeated...)
	}
}

// postfix applies * + ? {m,n} after an item, if any.
func (p *gbnfParser) postfix(item []elem) ([]elem, error) {
	if p.pos >= len(p.src) {
		return item, nil
	}
	lo, hi := -1, -1
	switch p.src[p.pos] {
	case '*':
		lo, hi = 0, -1
		p.advance(1)
	case '+':
		lo, hi = 1, -1
		p.advance(1)
	case '?':
		lo, hi = 0, 1
		p.advance(1)
	case '{':
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return nil, p.fail("unclosed {")
		}
		body := p.src[p.pos+1 : p.pos+end]
		a, b, comma := strings.Cut(body, ",")
		var err error
		if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil || lo < 0 {
			return nil, p.fail("bad repetition {%s}", body)
		}
		hi = lo
		if comma {
			hi = -1
			if strings.TrimSpace(b) != "" {
				if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil || hi < lo {
					return nil, p.fail("bad repetition {%s}", body)
				}
			}
		}
		if lo > maxGBNFRepeat || hi > maxGBNFRepeat {
			return nil, p.fail("repetition {%s} is above the %d this server supports", body, maxGBNFRepeat)
		}
		p.advance(end + 1)
	default:
		return item, nil
	}
	one := p.b.ruleOf("%item", item)
	c := &schemaCompiler{b: p.b}
	return c.repeat("%rep", one, nil, lo, hi), nil
}

// escape reads one escape after a backslash: the code point.
func (p *gbnfParser) escape() (rune, error) {
	if p.pos >= len(p.src) {
		return 0, p.fail("unfinished escape")
	}
	c := p.src[p.pos]
	p.advance(1)
	switch c {
	case 'n':
		return '\n', nil
	case 't':
		return '\t', nil
	case 'r':
		return '\r', nil
	case '\\', '"', ']', '[', '-', '^':
		return rune(c), nil
	case 'x', 'u', 'U':
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		if p.pos+n > len(p.src) {
			return 0, p.fail("unfinished \\%c escape", c)
		}
		v, err := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 32)
		if err != nil || v > utf8.MaxRune {
			return 0, p.fail("bad \\%c escape", c)
		}
		p.advance(n)
		return rune(v), nil
	}
	return 0, p.fail("unknown escape \\%c", c)
}

// char reads one character of a literal or class, escapes resolved.
func (p *gbnfParser) char() (rune, error) {
	if p.src[p.pos] == '\\' {
		p.advance(1)
		return p.escape()
	}
	r, n := utf8.DecodeRuneInString(p.src[p.pos:])
	if r == utf8.RuneError && n <= 1 {
		return 0, p.fail("the grammar is not valid UTF-8")
	}
	p.advance(n)
	return r, nil
}

func (p *gbnfParser) literal() ([]elem, error) {
	p.advance(1)
	var b []byte
	for {
		if p.pos >= len(p.src) {
			return nil, p.fail("unclosed string")
		}
		if p.src[p.pos] == '"' {
			p.advance(1)
			return lit(string(b)), nil
		}
		r, err := p.char()
		if err != nil {
			return nil, err
		}
		b = utf8.AppendRune(b, r)
	}
}

func (p *gbnfParser) charClass() (elem, error) {
	p.advance(1)
	negate := p.pos < len(p.src) && p.src[p.pos] == '^'
	if negate {
		p.advance(1)
	}
	type span struct{ lo, hi rune }
	var spans []span
	for {
		if p.pos >= len(p.src) {
			return elem{}, p.fail("unclosed [")
		}
		if p.src[p.pos] == ']' {
			p.advance(1)
			break
		}
		lo, err := p.char()
		if err != nil {
			return elem{}, err
		}
		hi := lo
		if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
			p.advance(1)
			if hi, err = p.char(); err != nil {
				return elem{}, err
			}
			if hi < lo {
				return elem{}, p.fail("range %q-%q is backwards", lo, hi)
			}
		}
		spans = append(spans, span{lo, hi})
	}
	if negate {
		// The complement within all code points: sort-free, by marking what is left out.
		var out []span
		next := rune(0)
		for next <= utf8.MaxRune {
			end := rune(utf8.MaxRune)
			skip := false
			for _, s := range spans {
				if s.lo <= next && next <= s.hi {
					next, skip = s.hi+1, true
					break
				}
				if s.lo > next && s.lo-1 < end {
					end = s.lo - 1
				}
			}
			if !skip {
				out = append(out, span{next, end})
				next = end + 1
			}
		}
		spans = out
	}
	var alts [][]elem
	for _, s := range spans {
		alts = append(alts, utf8Ranges(s.lo, s.hi)...)
	}
	if len(alts) == 0 {
		return elem{}, p.fail("the class matches no character")
	}
	return p.b.ruleOf("%class", alts...), nil
}

// utf8Ranges is the byte sequences of the UTF-8 encodings of the code points lo to hi (surrogates left
// out), as alternatives of byte classes: the range is split until each piece shares its leading bytes.
func utf8Ranges(lo, hi rune) [][]elem {
	if lo <= 0xd7ff && hi >= 0xe000 {
		return append(utf8Ranges(lo, 0xd7ff), utf8Ranges(0xe000, hi)...)
	}
	if lo >= 0xd800 && hi <= 0xdfff {
		return nil
	}
	lo, hi = clampSurrogate(lo, hi)
	// Split at the encoding length boundaries.
	for _, b := range []rune{0x7f, 0x7ff, 0xffff} {
		if lo <= b && hi > b {
			return append(utf8Ranges(lo, b), utf8Ranges(b+1, hi)...)
		}
	}
	n := utf8.RuneLen(lo)
	if n == 1 {
		var s byteSet
		s.add(byte(lo), byte(hi))
		return [][]elem{{class(s)}}
	}
	// Split so that all but the last byte agree, or the trailing bytes span their full range.
	for i := 1; i < n; i++ {
		m := rune(1)<<(6*i) - 1 // the low bits of i continuation bytes
		if lo&^m != hi&^m {
			if lo&m != 0 {
				return append(utf8Ranges(lo, lo|m), utf8Ranges((lo|m)+1, hi)...)
			}
			if hi&m != m {
				return append(utf8Ranges(lo, (hi&^m)-1), utf8Ranges(hi&^m, hi)...)
			}
		}
	}
	a, b := make([]byte, n), make([]byte, n)
	utf8.EncodeRune(a, lo)
	utf8.EncodeRune(b, hi)
	seq := make([]elem, n)
	for i := range n {
		var s byteSet
		s.add(a[i], b[i])
		seq[i] = class(s)
	}
	return [][]elem{seq}
}

func clampSurrogate(lo, hi rune) (rune, rune) {
	if lo >= 0xd800 && lo <= 0xdfff {
		lo = 0xe000
	}
	if hi >= 0xd800 && hi <= 0xdfff {
		hi = 0xd7ff
	}
	return lo, hi
}
