package constrain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Bounds that keep a constrained answer finite however the model behaves: a random model must finish
// a small schema in a few dozen tokens.
const (
	maxIndent     = 8  // spaces after a newline between JSON tokens
	maxDigits     = 15 // digits of an integer part or a fraction (an exponent has at most 2: a float64 holds it)
	anyDepth      = 4  // nesting of objects and arrays in a schema-less value (json_object mode)
	maxRepeatSpan = 64 // expanded bounds: minItems, maxItems, minLength, maxLength beyond this are refused
)

// SchemaError is a schema this compiler cannot honour: Keyword names the offending keyword (or
// value), Path where it is, as a JSON pointer.
type SchemaError struct {
	Path    string
	Keyword string
	Msg     string
}

func (e *SchemaError) Error() string {
	p := e.Path
	if p == "" {
		p = "/"
	}
	return fmt.Sprintf("schema at %s: %s", p, e.Msg)
}

// annotations are keywords that describe a schema without constraining its values.
var annotations = []string{"title", "description", "$schema", "$id", "$comment", "default", "examples",
	"deprecated", "readOnly", "writeOnly"}

// Keywords by the type they apply to; anything else is refused.
var (
	anyKeywords    = []string{"type", "enum", "const", "anyOf", "$ref", "$defs", "definitions"}
	stringKeywords = []string{"minLength", "maxLength", "pattern", "format"}
	objectKeywords = []string{"properties", "required", "additionalProperties"}
	arrayKeywords  = []string{"items", "minItems", "maxItems"}
	numberKeywords = []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
)

// schemaCompiler turns a JSON schema into grammar rules.
type schemaCompiler struct {
	b    *builder
	root map[string]json.RawMessage
	refs map[string]int32 // rules of "$ref" targets, by reference
	ws   elem
	prim map[string]elem // shared rules: string, number, ...
}

// CompileSchema compiles a JSON schema to a grammar of the JSON texts it accepts, written compactly
// but for bounded white space. It supports what OpenAI's structured outputs accept (object with
// properties, required and additionalProperties; array with items, minItems and maxItems; string
// with enum, const, minLength and maxLength or pattern; number; integer with minimum, maximum and their exclusive
// forms; boolean and null; anyOf; $ref to
// $defs, recursion included) and refuses anything else with a *SchemaError naming the keyword.
//
// Properties are written in the order the schema lists them, optional ones possibly left out, and no
// property beyond them: an answer that additionalProperties would allow more of is still valid.
func CompileSchema(schema []byte) (*Grammar, error) {
	c := &schemaCompiler{b: newBuilder(), refs: map[string]int32{}, prim: map[string]elem{}}
	if err := json.Unmarshal(schema, &c.root); err != nil {
		var t bool
		if json.Unmarshal(schema, &t) == nil && t {
			c.root = map[string]json.RawMessage{}
		} else {
			return nil, &SchemaError{Msg: "the schema must be a JSON object"}
		}
	}
	root := c.b.declare("root")
	c.ws = c.wsRule()
	e, err := c.value(c.root, "")
	if err != nil {
		return nil, err
	}
	c.b.define(root, []elem{e})
	return c.b.build()
}

// wsRule is white space between JSON tokens: nothing, a space, or a newline and up to maxIndent
// spaces.
func (c *schemaCompiler) wsRule() elem {
	next := c.b.ruleOf("sp0", nil)
	for i := 1; i <= maxIndent; i++ {
		next = c.b.ruleOf(fmt.Sprintf("sp%d", i), nil, seq(lit(" "), []elem{next}))
	}
	return c.b.ruleOf("ws", nil, lit(" "), seq(lit("\n"), []elem{next}))
}

// CompileJSONObject is json_object mode: any JSON object.
func CompileJSONObject() *Grammar {
	c := &schemaCompiler{b: newBuilder(), refs: map[string]int32{}, prim: map[string]elem{}}
	root := c.b.declare("root")
	c.ws = c.wsRule()
	c.b.define(root, []elem{c.anyObject(0)})
	g, err := c.b.build()
	if err != nil {
		panic("constrain: the json_object grammar does not build: " + err.Error()) // a bug, not input
	}
	return g
}

func (c *schemaCompiler) fail(path, keyword, format string, args ...any) error {
	return &SchemaError{Path: path, Keyword: keyword, Msg: fmt.Sprintf(format, args...)}
}

// value compiles one schema object.
func (c *schemaCompiler) value(s map[string]json.RawMessage, path string) (elem, error) {
	for k := range s {
		if !slices.Contains(annotations, k) && !slices.Contains(anyKeywords, k) && !slices.Contains(stringKeywords, k) &&
			!slices.Contains(objectKeywords, k) && !slices.Contains(arrayKeywords, k) && !slices.Contains(numberKeywords, k) && k != "strict" {
			return elem{}, c.fail(path, k, "keyword %q is not supported by this server's constrained decoding", k)
		}
	}
	if raw, ok := s["$ref"]; ok {
		if len(s) > 1 && !onlyAnnotations(s, "$ref", "$defs", "definitions") {
			return elem{}, c.fail(path, "$ref", "$ref beside other constraining keywords is not supported")
		}
		return c.ref(raw, path)
	}
	if raw, ok := s["const"]; ok {
		return c.literals(path, "const", raw)
	}
	if raw, ok := s["enum"]; ok {
		var vals []json.RawMessage
		if err := json.Unmarshal(raw, &vals); err != nil || len(vals) == 0 {
			return elem{}, c.fail(path, "enum", "enum must be a non-empty array")
		}
		return c.literals(path, "enum", vals...)
	}
	if raw, ok := s["anyOf"]; ok {
		var subs []json.RawMessage
		if err := json.Unmarshal(raw, &subs); err != nil || len(subs) == 0 {
			return elem{}, c.fail(path, "anyOf", "anyOf must be a non-empty array of schemas")
		}
		var alts [][]elem
		for i, sub := range subs {
			e, err := c.sub(sub, fmt.Sprintf("%s/anyOf/%d", path, i))
			if err != nil {
				return elem{}, err
			}
			alts = append(alts, []elem{e})
		}
		return c.b.ruleOf("anyof", alts...), nil
	}
	var types []string
	if raw, ok := s["type"]; ok {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			types = []string{one}
		} else if json.Unmarshal(raw, &types) != nil || len(types) == 0 {
			return elem{}, c.fail(path, "type", "type must be a string or a non-empty array of strings")
		}
	} else {
		// No type: infer it from the keywords, or any value.
		switch {
		case hasAny(s, objectKeywords):
			types = []string{"object"}
		case hasAny(s, arrayKeywords):
			types = []string{"array"}
		case hasAny(s, stringKeywords):
			types = []string{"string"}
		default:
			return c.anyValue(0), nil
		}
	}
	var alts [][]elem
	for _, t := range types {
		e, err := c.typed(t, s, path)
		if err != nil {
			return elem{}, err
		}
		alts = append(alts, []elem{e})
	}
	if len(alts) == 1 {
		return alts[0][0], nil
	}
	return c.b.ruleOf("types", alts...), nil
}

func onlyAnnotations(s map[string]json.RawMessage, allowed ...string) bool {
	for k := range s {
		if !slices.Contains(allowed, k) && !slices.Contains(annotations, k) {
			return false
		}
	}
	return true
}

func hasAny(s map[string]json.RawMessage, keys []string) bool {
	for _, k := range keys {
		if _, ok := s[k]; ok {
			return true
		}
	}
	return false
}

// sub compiles a subschema given as raw JSON (an object, or true for any value).
func (c *schemaCompiler) sub(raw json.RawMessage, path string) (elem, error) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(raw, &s); err != nil {
		var t bool
		if json.Unmarshal(raw, &t) == nil && t {
			return c.anyValue(0), nil
		}
		return elem{}, c.fail(path, "", "a subschema must be a JSON object (or true)")
	}
	return c.value(s, path)
}

// ref compiles a $ref to "#" or to "#/$defs/NAME" ("#/definitions/NAME"): one rule per target, so
// that recursion refers back to it.
func (c *schemaCompiler) ref(raw json.RawMessage, path string) (elem, error) {
	var target string
	if err := json.Unmarshal(raw, &target); err != nil {
		return elem{}, c.fail(path, "$ref", "$ref must be a string")
	}
	if id, ok := c.refs[target]; ok {
		return ref(id), nil
	}
	var s map[string]json.RawMessage
	switch {
	case target == "#":
		s = c.root
	case strings.HasPrefix(target, "#/$defs/"), strings.HasPrefix(target, "#/definitions/"):
		section, name, _ := strings.Cut(strings.TrimPrefix(target, "#/"), "/")
		var defs map[string]json.RawMessage
		if json.Unmarshal(c.root[section], &defs) != nil {
			return elem{}, c.fail(path, "$ref", "$ref %q: the schema has no %s", target, section)
		}
		name = strings.NewReplacer("~1", "/", "~0", "~").Replace(name)
		def, ok := defs[name]
		if !ok {
			return elem{}, c.fail(path, "$ref", "$ref %q: no such definition", target)
		}
		if json.Unmarshal(def, &s) != nil {
			var t bool
			if json.Unmarshal(def, &t) != nil || !t {
				return elem{}, c.fail(path, "$ref", "$ref %q: the definition is not a schema object", target)
			}
			s = map[string]json.RawMessage{}
		}
	default:
		return elem{}, c.fail(path, "$ref", "$ref %q is not supported: use \"#\" or \"#/$defs/NAME\"", target)
	}
	id := c.b.fresh("ref")
	c.refs[target] = id
	e, err := c.value(s, strings.TrimPrefix(target, "#"))
	if err != nil {
		return elem{}, err
	}
	c.b.define(id, []elem{e})
	return ref(id), nil
}

// literals matches exactly the given JSON values, each written compactly.
func (c *schemaCompiler) literals(path, keyword string, vals ...json.RawMessage) (elem, error) {
	var alts [][]elem
	seen := map[string]bool{}
	for _, v := range vals {
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return elem{}, c.fail(path, keyword, "%s holds invalid JSON", keyword)
		}
		canon, err := canonicalJSON(buf.Bytes())
		if err != nil {
			return elem{}, c.fail(path, keyword, "%s: %v", keyword, err)
		}
		if !seen[canon] {
			seen[canon] = true
			alts = append(alts, lit(canon))
		}
	}
	return c.b.ruleOf(keyword, alts...), nil
}

// canonicalJSON re-encodes a value the way Go writes JSON: keys in the order given, strings escaped
// as json.Marshal does (so "é" stays raw UTF-8), numbers as written.
func canonicalJSON(b []byte) (string, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "", err
	}
	if _, ok := v.(map[string]any); ok {
		return string(b), nil // compact already; keep the key order the schema wrote
	}
	return marshal(v)
}

// marshal writes v as JSON without Go's HTML escaping (a model writes "<", not "\u003c").
func marshal(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// typed compiles one type with its keywords.
func (c *schemaCompiler) typed(t string, s map[string]json.RawMessage, path string) (elem, error) {
	check := func(allowed []string) error {
		for _, group := range [][]string{stringKeywords, objectKeywords, arrayKeywords, numberKeywords} {
			if slices.Equal(group, allowed) {
				continue
			}
			for _, k := range group {
				if _, ok := s[k]; ok {
					if t == "number" && slices.Contains(numberKeywords, k) {
						return c.fail(path, k, "keyword %q is supported on integers only, not on type \"number\"", k)
					}
					return c.fail(path, k, "keyword %q does not apply to type %q", k, t)
				}
			}
		}
		return nil
	}
	var err error
	switch t {
	case "string":
		if err = check(stringKeywords); err == nil {
			return c.stringType(s, path)
		}
	case "integer":
		if err = check(numberKeywords); err == nil {
			return c.integer(s, path)
		}
	case "number", "boolean", "null":
		if err = check(nil); err == nil {
			return c.primitive(t), nil
		}
	case "object":
		if err = check(objectKeywords); err == nil {
			return c.object(s, path)
		}
	case "array":
		if err = check(arrayKeywords); err == nil {
			return c.array(s, path)
		}
	default:
		err = c.fail(path, "type", "type %q is not a JSON schema type", t)
	}
	return elem{}, err
}

// count reads a non-negative integer keyword; -1 when absent.
func (c *schemaCompiler) count(s map[string]json.RawMessage, path, key string) (int, error) {
	raw, ok := s[key]
	if !ok {
		return -1, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		return 0, c.fail(path, key, "%s must be a non-negative integer", key)
	}
	return n, nil
}

// bounds reads a min and max keyword pair, refusing spans too large to expand.
func (c *schemaCompiler) bounds(s map[string]json.RawMessage, path, minKey, maxKey string) (lo, hi int, err error) {
	if lo, err = c.count(s, path, minKey); err != nil {
		return
	}
	if hi, err = c.count(s, path, maxKey); err != nil {
		return
	}
	lo = max(lo, 0)
	switch {
	case hi >= 0 && hi < lo:
		err = c.fail(path, maxKey, "%s %d is below %s %d", maxKey, hi, minKey, lo)
	case lo > maxRepeatSpan:
		err = c.fail(path, minKey, "%s %d is above the %d this server supports", minKey, lo, maxRepeatSpan)
	case hi > maxRepeatSpan:
		err = c.fail(path, maxKey, "%s %d is above the %d this server supports", maxKey, hi, maxRepeatSpan)
	}
	return
}

// repeat matches lo to hi (-1: unbounded) of item, with sep between them.
func (c *schemaCompiler) repeat(name string, item elem, sep []elem, lo, hi int) []elem {
	// The optional tail: up to hi-lo more (each after a separator), or any number.
	var tail elem
	switch {
	case hi < 0:
		id := c.b.fresh(name + "-more")
		c.b.define(id, nil, seq(sep, []elem{item, ref(id)}))
		tail = ref(id)
	default:
		tail = c.b.ruleOf(name+"-end", nil)
		for range hi - max(lo, 1) {
			tail = c.b.ruleOf(name+"-opt", nil, seq(sep, []elem{item, tail}))
		}
	}
	if lo == 0 {
		if hi == 0 {
			return nil
		}
		return []elem{c.b.ruleOf(name+"-any", nil, []elem{item, tail})}
	}
	out := []elem{item}
	for range lo - 1 {
		out = append(out, sep...)
		out = append(out, item)
	}
	return append(out, tail)
}

func (c *schemaCompiler) stringType(s map[string]json.RawMessage, path string) (elem, error) {
	key := "pattern"
	if _, ok := s["format"]; ok {
		if _, both := s["pattern"]; both {
			return elem{}, c.fail(path, "format", "format beside pattern is not supported")
		}
		key = "format"
	}
	if raw, ok := s[key]; ok {
		var expr string
		if err := json.Unmarshal(raw, &expr); err != nil {
			return elem{}, c.fail(path, key, "%s must be a string", key)
		}
		if key == "format" {
			p, ok := formats[expr]
			if !ok {
				return elem{}, c.fail(path, "format", "format %q is not supported (supported: date, time, date-time, uuid, ipv4, email)", expr)
			}
			expr = p
		}
		for _, k := range []string{"minLength", "maxLength"} {
			if _, ok := s[k]; ok {
				return elem{}, c.fail(path, k, "%s beside %s is not supported", k, key)
			}
		}
		return c.pattern(expr, path)
	}
	lo, hi, err := c.bounds(s, path, "minLength", "maxLength")
	if err != nil {
		return elem{}, err
	}
	if lo <= 0 && hi < 0 {
		return c.primitive("string"), nil
	}
	body := c.repeat("chars", c.char(), nil, lo, hi)
	return c.b.ruleOf("string", seq(lit(`"`), body, lit(`"`))), nil
}

// char is one character of a JSON string: a UTF-8 character other than '"', '\' and controls, or an
// escape.
func (c *schemaCompiler) char() elem {
	if e, ok := c.prim["char"]; ok {
		return e
	}
	r := func(lo, hi byte) elem {
		var s byteSet
		s.add(lo, hi)
		return class(s)
	}
	var plain byteSet
	plain.add(0x20, 0x7f)
	plain[0] &^= 1 << '"'
	plain[1] &^= 1 << ('\\' - 64)
	cont := r(0x80, 0xbf)
	var hex byteSet
	hex.add('0', '9')
	hex.add('a', 'f')
	hex.add('A', 'F')
	var esc byteSet
	for _, ch := range `"\/bfnrt` {
		esc.add(byte(ch), byte(ch))
	}
	var e1 byteSet
	e1.add(0xe1, 0xec)
	e1.add(0xee, 0xef)
	e := c.b.ruleOf("char",
		[]elem{class(plain)},
		[]elem{r(0xc2, 0xdf), cont},
		[]elem{r(0xe0, 0xe0), r(0xa0, 0xbf), cont},
		[]elem{class(e1), cont, cont},
		[]elem{r(0xed, 0xed), r(0x80, 0x9f), cont},
		[]elem{r(0xf0, 0xf0), r(0x90, 0xbf), cont, cont},
		[]elem{r(0xf1, 0xf3), cont, cont, cont},
		[]elem{r(0xf4, 0xf4), r(0x80, 0x8f), cont, cont},
		seq(lit(`\`), []elem{class(esc)}),
		seq(lit(`\u`), []elem{class(hex), class(hex), class(hex), class(hex)}),
	)
	c.prim["char"] = e
	return e
}

// digits matches 1 to n digits, the first of class first.
func (c *schemaCompiler) digits(name string, first byteSet, n int) []elem {
	var d byteSet
	d.add('0', '9')
	return append([]elem{class(first)}, c.repeat(name, class(d), nil, 0, n-1)...)
}

// primitive is a shared rule for a scalar type.
func (c *schemaCompiler) primitive(t string) elem {
	if e, ok := c.prim[t]; ok {
		return e
	}
	var e elem
	switch t {
	case "string":
		e = c.b.ruleOf("string", seq(lit(`"`), c.repeat("chars", c.char(), nil, 0, -1), lit(`"`)))
	case "boolean":
		e = c.b.ruleOf("boolean", lit("true"), lit("false"))
	case "null":
		e = c.b.ruleOf("null", lit("null"))
	case "integer", "number":
		var nz, d byteSet
		nz.add('1', '9')
		d.add('0', '9')
		intPart := c.b.ruleOf("int", lit("0"), c.digits("intdigits", nz, maxDigits))
		sign := c.b.ruleOf("sign", nil, lit("-"))
		body := []elem{sign, intPart}
		if t == "number" {
			frac := c.b.ruleOf("frac", nil, seq(lit("."), c.digits("fracdigits", d, maxDigits)))
			var eE, pm byteSet
			eE.add('e', 'e')
			eE.add('E', 'E')
			pm.add('+', '+')
			pm.add('-', '-')
			exp := c.b.ruleOf("exp", nil, seq([]elem{class(eE), c.b.ruleOf("expsign", nil, []elem{class(pm)})}, c.digits("expdigits", d, 2)))
			body = append(body, frac, exp)
		}
		e = c.b.ruleOf(t, body)
	}
	c.prim[t] = e
	return e
}

// member is `"key": value` with white space around the colon.
func (c *schemaCompiler) member(key string, value elem) []elem {
	k, _ := marshal(key) // a string always encodes
	return seq(lit(k), []elem{c.ws}, lit(":"), []elem{c.ws, value})
}

func (c *schemaCompiler) object(s map[string]json.RawMessage, path string) (elem, error) {
	if _, ok := s["properties"]; !ok {
		if raw, ok := s["additionalProperties"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("false")) && !bytes.Equal(bytes.TrimSpace(raw), []byte("true")) {
			return elem{}, c.fail(path, "additionalProperties", "additionalProperties as a schema is not supported without properties")
		}
		if raw, ok := s["additionalProperties"]; ok && bytes.Equal(bytes.TrimSpace(raw), []byte("false")) {
			return c.b.ruleOf("empty-object", seq(lit("{"), []elem{c.ws}, lit("}"))), nil
		}
		if _, ok := s["required"]; ok {
			return elem{}, c.fail(path, "required", "required without properties is not supported")
		}
		return c.anyObject(0), nil
	}
	// properties, in the order the schema writes them.
	d := json.NewDecoder(bytes.NewReader(s["properties"]))
	var names []string
	var schemas []json.RawMessage
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return elem{}, c.fail(path, "properties", "properties must be an object")
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return elem{}, c.fail(path, "properties", "properties is not valid JSON")
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return elem{}, c.fail(path, "properties", "properties is not valid JSON")
		}
		name := tok.(string)
		if slices.Contains(names, name) {
			return elem{}, c.fail(path, "properties", "property %q is listed twice", name)
		}
		names = append(names, name)
		schemas = append(schemas, raw)
	}
	var required []string
	if raw, ok := s["required"]; ok {
		if err := json.Unmarshal(raw, &required); err != nil {
			return elem{}, c.fail(path, "required", "required must be an array of strings")
		}
		for _, r := range required {
			if !slices.Contains(names, r) {
				return elem{}, c.fail(path, "required", "required property %q is not in properties", r)
			}
		}
	}
	members := make([][]elem, len(names))
	for i, name := range names {
		v, err := c.sub(schemas[i], path+"/properties/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(name))
		if err != nil {
			return elem{}, err
		}
		members[i] = c.member(name, v)
	}
	sep := c.sep()
	// rest[i][p]: the members from i on, p telling whether one was written before (so a comma comes
	// first). Built from the end.
	type pair [2]elem
	next := pair{c.b.ruleOf("props-end", nil), c.b.ruleOf("props-end", nil)}
	for i := len(names) - 1; i >= 0; i-- {
		opt := !slices.Contains(required, names[i])
		var cur pair
		for p := range 2 {
			first := members[i]
			if p == 1 {
				first = seq(sep, members[i])
			}
			alts := [][]elem{seq(first, []elem{next[1]})}
			if opt {
				alts = append(alts, []elem{next[p]})
			}
			cur[p] = c.b.ruleOf("props", alts...)
		}
		next = cur
	}
	return c.b.ruleOf("object", seq(lit("{"), []elem{c.ws, next[0], c.ws}, lit("}"))), nil
}

func (c *schemaCompiler) array(s map[string]json.RawMessage, path string) (elem, error) {
	lo, hi, err := c.bounds(s, path, "minItems", "maxItems")
	if err != nil {
		return elem{}, err
	}
	item := c.anyValue(1)
	if raw, ok := s["items"]; ok {
		if item, err = c.sub(raw, path+"/items"); err != nil {
			return elem{}, err
		}
	}
	body := c.repeat("items", item, c.sep(), lo, hi)
	return c.b.ruleOf("array", seq(lit("["), []elem{c.ws}, body, []elem{c.ws}, lit("]"))), nil
}

// shared returns the rule built for key, building it the first time.
func (c *schemaCompiler) shared(key string, build func() elem) elem {
	if e, ok := c.prim[key]; ok {
		return e
	}
	e := build()
	c.prim[key] = e
	return e
}

// sep is the comma between members or items.
func (c *schemaCompiler) sep() []elem { return seq([]elem{c.ws}, lit(","), []elem{c.ws}) }

// anyValue is any JSON value, objects and arrays nested at most anyDepth deep from depth.
func (c *schemaCompiler) anyValue(depth int) elem {
	return c.shared(fmt.Sprintf("any%d", depth), func() elem {
		alts := [][]elem{{c.primitive("string")}, {c.primitive("number")}, {c.primitive("boolean")}, {c.primitive("null")}}
		if depth < anyDepth {
			alts = append(alts, []elem{c.anyObject(depth)}, []elem{c.anyArray(depth)})
		}
		return c.b.ruleOf(fmt.Sprintf("any%d", depth), alts...)
	})
}

func (c *schemaCompiler) anyObject(depth int) elem {
	return c.shared(fmt.Sprintf("object%d", depth), func() elem {
		m := seq([]elem{c.primitive("string"), c.ws}, lit(":"), []elem{c.ws, c.anyValue(depth + 1)})
		rid := c.b.fresh("members")
		c.b.define(rid, nil, seq(c.sep(), m, []elem{ref(rid)}))
		return c.b.ruleOf("object", seq(lit("{"), []elem{c.ws}, lit("}")), seq(lit("{"), []elem{c.ws}, m, []elem{ref(rid), c.ws}, lit("}")))
	})
}

func (c *schemaCompiler) anyArray(depth int) elem {
	return c.shared(fmt.Sprintf("array%d", depth), func() elem {
		body := c.repeat("items", c.anyValue(depth+1), c.sep(), 0, -1)
		return c.b.ruleOf("array", seq(lit("["), []elem{c.ws}, body, []elem{c.ws}, lit("]")))
	})
}

// maxInt is the largest integer the grammar writes: maxDigits nines.
const maxInt = 999_999_999_999_999

// integer is an integer type, within minimum and maximum (exclusive ones too) when given.
func (c *schemaCompiler) integer(s map[string]json.RawMessage, path string) (elem, error) {
	lo, hi := int64(-maxInt), int64(maxInt)
	bounded := false
	for _, k := range numberKeywords {
		raw, ok := s[k]
		if !ok {
			continue
		}
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return elem{}, c.fail(path, k, "%s must be a number", k)
		}
		if f < -maxInt || f > maxInt {
			return elem{}, c.fail(path, k, "%s %v is beyond the ±%d this server writes", k, f, int64(maxInt))
		}
		bounded = true
		switch k {
		case "minimum":
			lo = max(lo, int64(math.Ceil(f)))
		case "exclusiveMinimum":
			lo = max(lo, int64(math.Floor(f))+1)
		case "maximum":
			hi = min(hi, int64(math.Floor(f)))
		case "exclusiveMaximum":
			hi = min(hi, int64(math.Ceil(f))-1)
		}
	}
	if !bounded {
		return c.primitive("integer"), nil
	}
	if lo > hi {
		return elem{}, c.fail(path, "maximum", "no integer lies between the minimum and the maximum")
	}
	var alts [][]elem
	if hi >= 0 {
		alts = append(alts, c.digitRange(max(lo, 0), hi)...)
	}
	if lo < 0 { // -x for x in [max(1, -hi), -lo]
		for _, a := range c.digitRange(max(1, -hi), -lo) {
			alts = append(alts, seq(lit("-"), a))
		}
	}
	return c.b.ruleOf("integer-range", alts...), nil
}

// digitRange is the decimal numerals (no leading zeros) of lo to hi, 0 ≤ lo ≤ hi, as alternatives:
// split into ranges of one length, then by leading digit, the rest of each in a rule of its own so that
// the alternatives stay few.
func (c *schemaCompiler) digitRange(lo, hi int64) [][]elem {
	a, b := strconv.FormatInt(lo, 10), strconv.FormatInt(hi, 10)
	if len(a) < len(b) {
		top := int64(math.Pow10(len(a))) - 1 // the largest numeral as long as lo's
		return append(c.digitRange(lo, top), c.digitRange(top+1, hi)...)
	}
	return c.sameLength(a, b)
}

// sameLength is the numerals from a to b, of one length.
func (c *schemaCompiler) sameLength(a, b string) [][]elem {
	digits := func(lo, hi byte) elem {
		var s byteSet
		s.add(lo, hi)
		return class(s)
	}
	any := func(n int) []elem {
		out := make([]elem, n)
		for i := range out {
			out[i] = digits('0', '9')
		}
		return out
	}
	n := len(a)
	nines, zeros := strings.Repeat("9", n-1), strings.Repeat("0", n-1)
	switch {
	case n == 1:
		return [][]elem{{digits(a[0], b[0])}}
	case a[1:] == zeros && b[1:] == nines: // every numeral from a[0]00… to b[0]99…
		return [][]elem{append([]elem{digits(a[0], b[0])}, any(n-1)...)}
	case a[0] == b[0]:
		return [][]elem{{digits(a[0], a[0]), c.b.ruleOf("digits", c.sameLength(a[1:], b[1:])...)}}
	}
	out := [][]elem{{digits(a[0], a[0]), c.b.ruleOf("digits", c.sameLength(a[1:], nines)...)}}
	if a[0]+1 <= b[0]-1 {
		out = append(out, append([]elem{digits(a[0]+1, b[0]-1)}, any(n-1)...))
	}
	return append(out, []elem{digits(b[0], b[0]), c.b.ruleOf("digits", c.sameLength(zeros, b[1:])...)})
}
