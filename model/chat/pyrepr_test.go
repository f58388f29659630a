package chat

import "testing"

func TestPyRepr(t *testing.T) {
	// Expected values are Python 3.11's str(json.loads(in)).
	tests := []struct{ in, want string }{
		{`{}`, `{}`},
		{`[]`, `[]`},
		{` {"a": 1, "b": [true, false, null]} `, `{'a': 1, 'b': [True, False, None]}`},
		{`{"z": 1, "a": 2}`, `{'z': 1, 'a': 2}`},
		{`[1.0, 2, "x", {"k": {}}]`, `[1.0, 2, 'x', {'k': {}}]`},
		{`"it's"`, `it's`}, // str() of a top-level string is the string itself
		{`["it's"]`, `["it's"]`},
		{`["say \"hi\""]`, `['say "hi"']`},
		{`["both ' and \""]`, `['both \' and "']`},
		{`["tab\tnl\nret\rbs\\"]`, `['tab\tnl\nret\rbs\\']`},
		{`{"k": "\u0001\u007f\u0085\u00a0\u00e9\u2028\u200b\ud83d\ude00\ue000"}`, `{'k': '\x01\x7f\x85\xa0é\u2028\u200b😀\ue000'}`},
		{`["日本語"]`, `['日本語']`},
		{`1`, `1`},
		{`-0`, `0`},
		{`12345678901234567890123`, `12345678901234567890123`},
		{`1.0`, `1.0`},
		{`-0.0`, `-0.0`},
		{`0.1`, `0.1`},
		{`1e16`, `1e+16`},
		{`1.5e16`, `1.5e+16`},
		{`9999999999999998.0`, `9999999999999998.0`},
		{`1e-4`, `0.0001`},
		{`1e-5`, `1e-05`},
		{`123.456e2`, `12345.6`},
		{`1E400`, `inf`},
		{`-1e400`, `-inf`},
		{`2.5e-7`, `2.5e-07`},
		{`0.000123`, `0.000123`},
	}
	for _, tt := range tests {
		got, err := pyRepr([]byte(tt.in))
		if err != nil {
			t.Errorf("pyRepr(%s): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("pyRepr(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestPyReprErrors(t *testing.T) {
	for _, in := range []string{``, ` `, `{`, `[1,]`, `{"a" 1}`, `{"a": 1}}`, `1 2`, `"unterminated`, `{"a": 1, "a": 1}`, `nul`} {
		if got, err := pyRepr([]byte(in)); err == nil {
			t.Errorf("pyRepr(%q) = %q, want an error", in, got)
		}
	}
}
