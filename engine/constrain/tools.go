package constrain

import (
	"encoding/json"
	"fmt"
)

// Function is a function the model may call: its name and the JSON schema of its arguments (nil for
// any object).
type Function struct {
	Name       string
	Parameters json.RawMessage
}

// CompileToolCalls compiles the language of tool calls in SmolLM3's format: open, then
// {"name": NAME, "arguments": ARGS} where ARGS validates against that function's parameters, then
// close, with bounded white space around the object. With many, one or more calls separated by white
// space; otherwise exactly one. Schema errors name the function.
func CompileToolCalls(funcs []Function, open, close string, many bool) (*Grammar, error) {
	if len(funcs) == 0 {
		return nil, &SchemaError{Keyword: "tools", Msg: "no function to call"}
	}
	b := newBuilder()
	root := b.declare("root")
	base := &schemaCompiler{b: b, prim: map[string]elem{}}
	base.ws = base.wsRule()
	var alts [][]elem
	for _, f := range funcs {
		c := &schemaCompiler{b: b, refs: map[string]int32{}, prim: base.prim, ws: base.ws}
		args := c.anyObject(0)
		if len(f.Parameters) > 0 && string(f.Parameters) != "null" {
			if err := json.Unmarshal(f.Parameters, &c.root); err != nil {
				return nil, &SchemaError{Path: "/" + f.Name, Keyword: "parameters", Msg: fmt.Sprintf("function %q: parameters must be a JSON schema object", f.Name)}
			}
			e, err := c.value(c.root, "")
			if err != nil {
				if se, ok := err.(*SchemaError); ok {
					se.Msg = fmt.Sprintf("function %q: %s", f.Name, se.Msg)
				}
				return nil, err
			}
			args = e
		}
		name, _ := marshal(f.Name)
		obj := seq(lit("{"), []elem{c.ws}, c.member("name", c.b.ruleOf("name", lit(name))), c.sep(), c.member("arguments", args), []elem{c.ws}, lit("}"))
		alts = append(alts, obj)
	}
	call := b.ruleOf("call", seq(lit(open), []elem{base.ws, b.ruleOf("calls", alts...), base.ws}, lit(close)))
	body := []elem{call}
	if many {
		more := b.fresh("more-calls")
		b.define(more, nil, []elem{base.ws, call, ref(more)})
		body = append(body, ref(more))
	}
	b.define(root, body)
	return b.build()
}
