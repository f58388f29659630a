package constrain

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func matches(g *Grammar, text string) bool {
	m := g.NewMatcher()
	return m.Accept([]byte(text)) && m.Complete()
}

// checkLanguage checks that g matches every string of good and none of bad.
func checkLanguage(t *testing.T, g *Grammar, good, bad []string) {
	t.Helper()
	for _, s := range good {
		if !matches(g, s) {
			t.Errorf("refused %q", s)
		}
	}
	for _, s := range bad {
		if matches(g, s) {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestSchemaMatches(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		good   []string
		bad    []string
	}{
		{"string", `{"type":"string"}`, []string{`""`, `"héllo"`, `"a\"b"`, `"\u00e9"`, `"tab\t"`},
			[]string{`"x`, `x`, `"a` + "\x01" + `"`, `"\q"`, "\"\xff\""}},
		{"string lengths", `{"type":"string","minLength":2,"maxLength":3}`, []string{`"ab"`, `"abc"`, `"éé"`},
			[]string{`"a"`, `"abcd"`}},
		{"enum", `{"enum":["red","green",3,null]}`, []string{`"red"`, `"green"`, `3`, `null`}, []string{`"blue"`, `"re"`}},
		{"const", `{"const":{"a":[1,2]}}`, []string{`{"a":[1,2]}`}, []string{`{"a":[1]}`}},
		{"integer", `{"type":"integer"}`, []string{`0`, `-12`, `123456789012345`}, []string{`01`, `1.5`, `-`, `1234567890123456`}},
		{"number", `{"type":"number"}`, []string{`0`, `-1.5`, `2e10`, `3.25E-2`, `1e+99`}, []string{`.5`, `1.`, `1e`, `1e100`}},
		{"boolean and null", `{"type":["boolean","null"]}`, []string{`true`, `false`, `null`}, []string{`nul`, `1`}},
		{"object", `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a","b"],"additionalProperties":false}`,
			[]string{`{"a":1,"b":"x"}`, `{ "a": 1, "b": "x" }`, "{\n  \"a\": 1,\n  \"b\": \"x\"\n}"},
			[]string{`{"b":"x","a":1}`, `{"a":1}`, `{"a":1,"b":"x","c":2}`, "{\n           \"a\":1,\"b\":\"\"}"}},
		{"optional properties", `{"properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}},"required":["b"]}`,
			[]string{`{"b":1}`, `{"a":1,"b":2}`, `{"b":1,"c":2}`, `{"a":0,"b":1,"c":2}`}, []string{`{}`, `{"a":1}`, `{"a":1,,"b":2}`, `{,"b":1}`}},
		{"array", `{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":3}`,
			[]string{`[true]`, `[true, false]`, `[true,false,true]`}, []string{`[]`, `[true,true,true,true]`, `[1]`}},
		{"empty array allowed", `{"type":"array","items":{"type":"null"}}`, []string{`[]`, `[null,null]`}, []string{`[,]`}},
		{"anyOf", `{"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]}`, []string{`5`, `"a"`}, []string{`"ab"`, `true`}},
		{"recursion", `{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v","next"]}},"$ref":"#/$defs/node"}`,
			[]string{`{"v":1,"next":null}`, `{"v":1,"next":{"v":2,"next":{"v":3,"next":null}}}`}, []string{`{"v":1}`, `{"v":1,"next":{"v":2}}`}},
		{"root recursion", `{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}}},"required":["kids"]}`,
			[]string{`{"kids":[]}`, `{"kids":[{"kids":[]},{"kids":[{"kids":[]}]}]}`}, []string{`{"kids":[{}]}`}},
		{"any object", `{"type":"object"}`, []string{`{}`, `{"x":[1,{"y":null}]}`}, []string{`[]`, `{"x"}`}},
		{"any value", `{}`, []string{`1`, `"s"`, `[{}]`}, []string{`{`, `tru`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := CompileSchema([]byte(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			checkLanguage(t, g, tt.good, tt.bad)
		})
	}
}

func TestSchemaRefusals(t *testing.T) {
	tests := []struct{ schema, keyword string }{
		{`{"type":"string","pattern":"a\\Bb"}`, "pattern"},
		{`{"type":"string","format":"hostname"}`, "format"},
		{`{"type":"number","minimum":3}`, "minimum"},
		{`{"type":"integer","multipleOf":3}`, "multipleOf"},
		{`{"oneOf":[{"type":"string"}]}`, "oneOf"},
		{`{"type":"object","properties":{"a":{"not":{}}}}`, "not"},
		{`{"type":"string","minItems":2}`, "minItems"},
		{`{"type":"widget"}`, "type"},
		{`{"$ref":"http://example.com/s"}`, "$ref"},
		{`{"$ref":"#/$defs/missing"}`, "$ref"},
		{`{"type":"array","maxItems":100000}`, "maxItems"},
		{`{"type":"array","minItems":3,"maxItems":2}`, "maxItems"},
		{`{"type":"object","properties":{"a":{}},"required":["b"]}`, "required"},
		{`{"enum":[]}`, "enum"},
		{`[1]`, ""},
	}
	for _, tt := range tests {
		_, err := CompileSchema([]byte(tt.schema))
		var se *SchemaError
		if !errors.As(err, &se) || se.Keyword != tt.keyword {
			t.Errorf("%s: error %v, want one naming %q", tt.schema, err, tt.keyword)
			continue
		}
		if tt.keyword != "" && !strings.Contains(se.Error(), tt.keyword) {
			t.Errorf("%s: message %q does not name %q", tt.schema, se.Error(), tt.keyword)
		}
	}
}

func TestJSONObjectMode(t *testing.T) {
	g := CompileJSONObject()
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,"x",null,true]}}`} {
		if !matches(g, s) {
			t.Errorf("refused %q", s)
		}
	}
	for _, s := range []string{`[]`, `1`, `{"a":1} x`, `{"a":{"b":{"c":{"d":{"e":1}}}}}`} {
		if matches(g, s) {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestToolCalls(t *testing.T) {
	funcs := []Function{
		{Name: "get_weather", Parameters: []byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`)},
		{Name: "now"},
		{Name: "tree", Parameters: []byte(`{"$defs":{"n":{"type":"object","properties":{"k":{"type":"array","items":{"$ref":"#/$defs/n"}}},"required":["k"]}},"$ref":"#/$defs/n"}`)},
	}
	many, err := CompileToolCalls(funcs, "<tool_call>", "</tool_call>", true)
	if err != nil {
		t.Fatal(err)
	}
	one, err := CompileToolCalls(funcs, "", "</tool_call>", false)
	if err != nil {
		t.Fatal(err)
	}
	call := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
	for _, s := range []string{call, call + "\n" + call, `<tool_call>{"name":"now","arguments":{}}</tool_call>`,
		`<tool_call>{"name":"tree","arguments":{"k":[{"k":[]}]}}</tool_call>`} {
		if !matches(many, s) {
			t.Errorf("refused %q", s)
		}
	}
	for _, s := range []string{"", "hi " + call, `<tool_call>{"name":"nope","arguments":{}}</tool_call>`,
		`<tool_call>{"name":"get_weather","arguments":{}}</tool_call>`, `<tool_call>{"arguments":{},"name":"now"}</tool_call>`} {
		if matches(many, s) {
			t.Errorf("accepted %q", s)
		}
	}
	if !matches(one, "\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>") || matches(one, call) {
		t.Error("the single call after its opening tag")
	}
	if _, err := CompileToolCalls([]Function{{Name: "f", Parameters: []byte(`{"type":"string","format":"hostname"}`)}}, "", "", false); err == nil ||
		!strings.Contains(err.Error(), `"f"`) || !strings.Contains(err.Error(), "format") {
		t.Errorf("a bad parameters schema: %v", err)
	}
}

// TestIntegerRange checks minimum and maximum (exclusive ones too) against every integer near the
// bounds and a sample beyond.
func TestIntegerRange(t *testing.T) {
	for _, tt := range []struct {
		schema string
		lo, hi int64
	}{
		{`{"type":"integer","minimum":0,"maximum":100}`, 0, 100},
		{`{"type":"integer","minimum":-37,"maximum":215}`, -37, 215},
		{`{"type":"integer","exclusiveMinimum":-1000,"exclusiveMaximum":-5}`, -999, -6},
		{`{"type":"integer","minimum":17}`, 17, maxInt},
		{`{"type":"integer","maximum":-3}`, -maxInt, -3},
		{`{"type":"integer","minimum":1.5,"maximum":1999.9}`, 2, 1999},
		{`{"type":"integer","minimum":7,"maximum":7}`, 7, 7},
	} {
		g, err := CompileSchema([]byte(tt.schema))
		if err != nil {
			t.Fatalf("%s: %v", tt.schema, err)
		}
		check := func(v int64) {
			want := v >= tt.lo && v <= tt.hi
			if got := matches(g, strconv.FormatInt(v, 10)); got != want {
				t.Errorf("%s: %d matched %v", tt.schema, v, got)
			}
		}
		for _, b := range []int64{tt.lo, tt.hi, 0, -1, 1, 9, 10, 99, 100, -10, -100} {
			for d := int64(-12); d <= 12; d++ {
				check(b + d)
			}
		}
		for v := int64(-2500); v <= 2500; v += 7 {
			check(v)
		}
		if matches(g, "-0") || matches(g, "007") {
			t.Errorf("%s: matched a numeral with a leading zero", tt.schema)
		}
	}
	for _, s := range []string{`{"type":"integer","minimum":5,"maximum":4}`, `{"type":"number","minimum":1}`,
		`{"type":"integer","maximum":1e20}`, `{"type":"integer","minimum":"1"}`} {
		if _, err := CompileSchema([]byte(s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

// TestPattern checks patterns against Go's regexp on the decoded value, for JSON-encoded candidates.
func TestPattern(t *testing.T) {
	candidates := []string{"", "a", "abc", "ABC", "aBc", "abcabc", "x-12", "12", "123", "1234", "2024-01-31", "20240131",
		"hello world", "a\"b", `a\b`, "line\nbreak", "tab\t", "é", "éé", "日本", "ab12", "zz", "-5", "+7", "a.b", "a b c"}
	for _, p := range []string{`^[a-c]+$`, `^(?i)abc$`, `abc`, `^\d{2,3}$`, `^\d{4}-\d{2}-\d{2}$`, `^[^"\\]*$`, `b$`, `^x`,
		`^.{2}$`, `^[a-z]+ [a-z]+$`, `^(ab|cd)*[0-9]?$`, `^[\w.]+$`, `\n`, `^[é日本]+$`, `^[+-]?\d+$`, `^a\"b$`, `^a\\b$`} {
		g, err := CompileSchema([]byte(fmt.Sprintf(`{"type":"string","pattern":%q}`, p)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		re := regexp.MustCompile(p)
		for _, v := range candidates {
			enc, _ := marshal(v)
			if got, want := matches(g, enc), re.MatchString(v); got != want {
				t.Errorf("pattern %s, value %q (%s): grammar %v, regexp %v", p, v, enc, got, want)
			}
		}
	}
	for _, s := range []string{`{"type":"string","pattern":"("}`, `{"type":"string","pattern":"a\\bb"}`,
		`{"type":"string","pattern":"a","maxLength":3}`} {
		var se *SchemaError
		if _, err := CompileSchema([]byte(s)); !errors.As(err, &se) {
			t.Errorf("%s: error %v, want a SchemaError", s, err)
		}
	}
}

func TestFormats(t *testing.T) {
	tests := []struct {
		format    string
		good, bad []string
	}{
		{"date", []string{"2024-01-31", "1999-12-01", "2023-02-28"}, []string{"2024-02-30", "2024-13-01", "24-01-01", "2024-04-31"}},
		{"time", []string{"23:59:59Z", "00:00:00.5+02:00"}, []string{"24:00:00Z", "12:00:00", "12:60:00Z"}},
		{"date-time", []string{"2024-06-30T12:00:00Z"}, []string{"2024-06-30 12:00:00Z"}},
		{"uuid", []string{"123e4567-e89b-12d3-a456-426614174000"}, []string{"123e4567e89b12d3a456426614174000"}},
		{"ipv4", []string{"192.168.0.1", "0.0.0.0", "255.255.255.255"}, []string{"256.1.1.1", "1.2.3", "01.2.3.4"}},
		{"email", []string{"a@b.co", "jo.doe@mail.example.org"}, []string{"a@b", "@b.co", ".a@b.co"}},
	}
	for _, tt := range tests {
		g, err := CompileSchema([]byte(`{"type":"string","format":"` + tt.format + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		enc := func(ss []string) []string {
			var out []string
			for _, s := range ss {
				e, _ := marshal(s)
				out = append(out, e)
			}
			return out
		}
		checkLanguage(t, g, enc(tt.good), enc(tt.bad))
	}
}
