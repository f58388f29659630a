package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"smolchat/engine"
	"smolchat/engine/constrain"
)

// Tool calling in SmolLM3's format: the template lists the functions in its tools section and the
// model answers with blocks of
//
//	<tool_call>
//	{"name": "get_weather", "arguments": {"city": "Paris"}}
//	</tool_call>
//
// which become message.tool_calls. What the client gets, in every case:
//   - Each block whose inside parses as {"name": a string, "arguments": an object} is a tool call; the
//     text around the blocks, trimmed, is the content (null when empty). finish_reason is "tool_calls"
//     when there is a call and the generation ended by itself.
//   - A block that does not parse, or is never closed, stays in the content as text, tags included.
//     Under tool_choice "auto" the grammar holds a block's inside to a valid call once the model
//     writes <tool_call>, so only max_tokens can leave one unfinished.
//   - tool_choice "none" bans the <tool_call> token and nothing is parsed: the answer is content.

const (
	toolCallOpen  = "<tool_call>"
	toolCallClose = "</tool_call>"
)

// toolDef is one entry of the request's tools.
type toolDef struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// toolPlan is what a request's tools and tool_choice make of a generation.
type toolPlan struct {
	tools []json.RawMessage // as the template renders them
	parse bool              // the answer's <tool_call> blocks become tool_calls
}

// tools validates tools and tool_choice and sets the constraint they ask for in g. A nil plan means
// no tools.
func (r *chatRequest) tools(info engine.Info, g *engine.GenParams) (*toolPlan, *apiError) {
	var raws []json.RawMessage
	if len(r.Tools) > 0 && string(r.Tools) != "null" {
		if err := json.Unmarshal(r.Tools, &raws); err != nil {
			return nil, badRequest("tools", "tools must be an array of tool objects")
		}
	}
	choice, named, aerr := r.toolChoice()
	if aerr != nil {
		return nil, aerr
	}
	if len(raws) == 0 {
		if named != "" || choice == "required" {
			return nil, badRequest("tool_choice", "tool_choice %q needs tools", choice+named)
		}
		return nil, nil
	}
	if !info.Tools {
		return nil, badRequest("tools", "this model's chat template has no tools section, so it cannot be offered functions")
	}
	funcs := make([]constrain.Function, len(raws))
	found := named == ""
	for i, raw := range raws {
		var t toolDef
		if err := json.Unmarshal(raw, &t); err != nil || t.Type != "function" {
			return nil, badRequest(fmt.Sprintf("tools[%d]", i), "tools[%d] must be {\"type\": \"function\", \"function\": {...}}", i)
		}
		if !toolName.MatchString(t.Function.Name) {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "tools[%d].function.name %q must be 1 to 64 letters, digits, _ or -", i, t.Function.Name)
		}
		for _, f := range funcs[:i] {
			if f.Name == t.Function.Name {
				return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "function %q is listed twice", f.Name)
			}
		}
		funcs[i] = constrain.Function{Name: t.Function.Name, Parameters: t.Function.Parameters}
		found = found || t.Function.Name == named
	}
	if !found {
		return nil, badRequest("tool_choice", "tool_choice names function %q, which is not in tools", named)
	}
	plan := &toolPlan{tools: raws, parse: choice != "none"}
	if choice == "none" {
		g.Ban = append(g.Ban, toolCallOpen)
		return plan, nil
	}
	if g.Grammar != nil {
		return nil, badRequest("tools", "tools (with tool_choice other than \"none\") and a response format or json_schema cannot be combined")
	}
	var err error
	switch {
	case named != "":
		var only []constrain.Function
		for _, f := range funcs {
			if f.Name == named {
				only = append(only, f)
			}
		}
		g.Grammar, err = constrain.CompileToolCalls(only, toolCallOpen, toolCallClose, false)
	case choice == "required":
		// parallel_tool_calls false: exactly one call; otherwise one or more.
		many := r.ParallelToolCalls == nil || *r.ParallelToolCalls
		g.Grammar, err = constrain.CompileToolCalls(funcs, toolCallOpen, toolCallClose, many)
	default: // auto: free, but a call's inside is held to the functions once it starts
		g.Grammar, err = constrain.CompileToolCalls(funcs, "", toolCallClose, false)
		g.Trigger = toolCallOpen
	}
	if err != nil {
		return nil, badRequest("tools", "tools: %v", err)
	}
	return plan, nil
}

// toolChoice reads tool_choice: "none", "auto" (the default), "required", or a named function.
func (r *chatRequest) toolChoice() (choice, named string, _ *apiError) {
	raw := bytes.TrimSpace(r.ToolChoice)
	if len(raw) == 0 || string(raw) == "null" {
		return "auto", "", nil
	}
	if json.Unmarshal(raw, &choice) == nil {
		switch choice {
		case "none", "auto", "required":
			return choice, "", nil
		}
		return "", "", badRequest("tool_choice", "tool_choice %q is not one of none, auto, required or a named function", choice)
	}
	var fn struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &fn) != nil || fn.Type != "function" || fn.Function.Name == "" {
		return "", "", badRequest("tool_choice", `tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}`)
	}
	return "", fn.Function.Name, nil
}

// toolCallOut is a tool call in a response message or a stream delta.
type toolCallOut struct {
	Index    *int   `json:"index,omitempty"` // streams only
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// parseCall reads the inside of a <tool_call> block: a call, or false.
func parseCall(inside string) (toolCallOut, bool) {
	var c struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	var out toolCallOut
	d := json.NewDecoder(strings.NewReader(inside))
	if d.Decode(&c) != nil || d.More() || c.Name == "" {
		return out, false
	}
	var args bytes.Buffer
	if json.Compact(&args, c.Arguments) != nil || args.Len() == 0 || args.Bytes()[0] != '{' {
		return out, false
	}
	out.ID, out.Type = newID("call_"), "function"
	out.Function.Name, out.Function.Arguments = c.Name, args.String()
	return out, true
}

// callSplitter separates an answer, as it streams, into content and tool calls (see the rules at
// the top of this file): it holds back what may be the start of a <tool_call> tag, a block until it
// closes, and white space until text follows it (so that the content comes out trimmed).
type callSplitter struct {
	buf     string // undecided text: a possible tag start, or a block being read
	inBlock bool
	ws      string // white space held back
	started bool   // content has been released
}

// push adds text and calls content and call for what is now known.
func (s *callSplitter) push(text string, content func(string), call func(toolCallOut)) {
	s.buf += text
	for s.buf != "" {
		if s.inBlock {
			i := strings.Index(s.buf, toolCallClose)
			if i < 0 {
				return
			}
			inside := s.buf[:i]
			s.buf, s.inBlock = s.buf[i+len(toolCallClose):], false
			if c, ok := parseCall(inside); ok {
				call(c)
			} else {
				s.text(toolCallOpen+inside+toolCallClose, content)
			}
			continue
		}
		if i := strings.Index(s.buf, toolCallOpen); i >= 0 {
			s.text(s.buf[:i], content)
			s.buf, s.inBlock = s.buf[i+len(toolCallOpen):], true
			continue
		}
		keep := partialTag(s.buf, toolCallOpen)
		s.text(s.buf[:len(s.buf)-keep], content)
		s.buf = s.buf[len(s.buf)-keep:]
		return
	}
}

// text releases content, holding back trailing white space and dropping leading white space.
func (s *callSplitter) text(t string, content func(string)) {
	t = s.ws + t
	body := strings.TrimRightFunc(t, unicode.IsSpace)
	s.ws = t[len(body):]
	if !s.started {
		body = strings.TrimLeftFunc(body, unicode.IsSpace)
	}
	if body != "" {
		s.started = true
		content(body)
	}
}

// flush ends the answer: an unclosed block or a partial tag is content; trailing white space goes.
func (s *callSplitter) flush(content func(string)) {
	rest := s.buf
	if s.inBlock {
		rest = toolCallOpen + rest
	}
	s.buf, s.inBlock = "", false
	s.text(rest, content)
	s.ws = ""
}

// partialTag is the length of the longest proper prefix of tag that s ends with.
func partialTag(s, tag string) int {
	for n := min(len(tag)-1, len(s)); n > 0; n-- {
		if strings.HasSuffix(s, tag[:n]) {
			return n
		}
	}
	return 0
}

// splitCalls is callSplitter over a whole answer.
func splitCalls(answer string) (content string, calls []toolCallOut) {
	var s callSplitter
	var b strings.Builder
	add := func(t string) { b.WriteString(t) }
	s.push(answer, add, func(c toolCallOut) { calls = append(calls, c) })
	s.flush(add)
	return b.String(), calls
}

// argumentChunks splits a call's arguments for streaming, at most n bytes a chunk, never inside a
// character.
func argumentChunks(args string, n int) []string {
	var out []string
	for len(args) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(args[cut]) {
			cut--
		}
		if cut == 0 {
			cut = n
		}
		out = append(out, args[:cut])
		args = args[cut:]
	}
	return append(out, args)
}

// renderToolCalls writes an assistant message's tool_calls back into its content the way the model
// writes them, since SmolLM3's template shows only the content: so a multi-step conversation reads
// to the model as it wrote it.
func renderToolCalls(content string, calls []apiToolCall) (string, error) {
	var b strings.Builder
	b.WriteString(content)
	for i, c := range calls {
		if c.Function.Name == "" {
			return "", fmt.Errorf("tool_calls[%d] has no function name", i)
		}
		args := bytes.TrimSpace([]byte(c.Function.Arguments))
		if len(args) == 0 {
			args = []byte("{}")
		}
		if !json.Valid(args) {
			return "", fmt.Errorf("tool_calls[%d].function.arguments is not JSON", i)
		}
		name, _ := json.Marshal(c.Function.Name)
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s\n{\"name\": %s, \"arguments\": %s}\n%s", toolCallOpen, name, args, toolCallClose)
	}
	return b.String(), nil
}

// apiToolCall is a tool call in a request's assistant message.
type apiToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}
