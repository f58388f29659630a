package constrain

import (
	"errors"
	"testing"
)

// FuzzCompileSchema: any input compiles or fails with an error (a *SchemaError for JSON objects),
// never a panic, and a compiled grammar can start matching.
func FuzzCompileSchema(f *testing.F) {
	for _, s := range []string{`{}`, `true`, `{"type":"string","maxLength":3}`, `{"enum":[1,"a",null]}`,
		`{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`, `{"$ref":"#"}`,
		`{"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]}`,
		`{"anyOf":[{"type":"array","items":{"type":"number"},"minItems":2}]}`, `{"type":["string","null"]}`,
		`{"type":"string","pattern":"x"}`, `{"properties":{"a":1}}`, `{"type":7}`, `{"const":{"a":[]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		g, err := CompileSchema(schema)
		if err != nil {
			var se *SchemaError
			if !errors.As(err, &se) && !isBuildError(err) {
				t.Fatalf("%q: error %T %v is not a SchemaError", schema, err, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		m := g.NewMatcher()
		m.Accept([]byte(`{"a": [1, "x", null]}`))
		m.Complete()
	})
}

// isBuildError reports an error of the grammar's own checks (a schema whose references loop without
// consuming a byte is left-recursive).
func isBuildError(err error) bool {
	var be *buildError
	return errors.As(err, &be)
}

// FuzzCompileGBNF: any text compiles or fails with a GBNFError or a build error, never a panic.
func FuzzCompileGBNF(f *testing.F) {
	for _, s := range []string{`root ::= "a"`, `root ::= [^a-z\]]* "\u00e9"{2,3}`, "root ::= x | (\"y\" x)+\nx ::= .",
		`root ::= "(" root ")" | ""`, `root ::= root`, `root ::= [`, `root ::= "a"{1,`, "# c\nroot ::= [\\x00-\\U0010FFFF]?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		g, err := CompileGBNF(text)
		if err != nil {
			var ge *GBNFError
			if !errors.As(err, &ge) && !isBuildError(err) {
				t.Fatalf("%q: error %T %v", text, err, err)
			}
			return
		}
		m := g.NewMatcher()
		m.Accept([]byte("a(b)é"))
		m.Complete()
	})
}
