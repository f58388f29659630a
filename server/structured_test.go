package server

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// structuredSchemas are the schemas the structured-output test holds a random model to: every
// construct the compiler supports, alone and nested.
var structuredSchemas = []string{
	`{"type":"string","maxLength":12}`,
	`{"type":"string","minLength":3,"maxLength":5}`,
	`{"type":"integer"}`,
	`{"type":"number"}`,
	`{"type":"boolean"}`,
	`{"type":"null"}`,
	`{"enum":["red","green","blue"]}`,
	`{"const":"fixed"}`,
	`{"enum":[1,2.5,"x",null,true,{"k":[1]}]}`,
	`{"type":["integer","null"]}`,
	`{"type":"array","items":{"type":"integer"},"maxItems":4}`,
	`{"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":3}`,
	`{"type":"array","items":{"enum":["a","b"]},"minItems":1}`,
	`{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}`,
	`{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":"null"},"c":{"type":"integer"}},"required":["b"],"additionalProperties":false}`,
	`{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"]}`,
	`{"type":"object","properties":{},"additionalProperties":false}`,
	`{"type":"object"}`,
	`{"type":"object","properties":{"user":{"type":"object","properties":{"id":{"type":"integer"},"tags":{"type":"array","items":{"type":"string","maxLength":4},"maxItems":3}},"required":["id","tags"],"additionalProperties":false}},"required":["user"],"additionalProperties":false}`,
	`{"anyOf":[{"type":"integer"},{"type":"string","maxLength":3}]}`,
	`{"anyOf":[{"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number"}},"required":["kind","r"],"additionalProperties":false},{"type":"object","properties":{"kind":{"const":"square"},"side":{"type":"integer"}},"required":["kind","side"],"additionalProperties":false}]}`,
	`{"$defs":{"point":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"],"additionalProperties":false}},"type":"object","properties":{"from":{"$ref":"#/$defs/point"},"to":{"$ref":"#/$defs/point"}},"required":["from","to"],"additionalProperties":false}`,
	`{"$defs":{"list":{"anyOf":[{"type":"null"},{"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#/$defs/list"}},"required":["v","next"],"additionalProperties":false}]}},"$ref":"#/$defs/list"}`,
	`{"type":"object","properties":{"name":{"type":"string","maxLength":6},"children":{"type":"array","items":{"$ref":"#"},"maxItems":2}},"required":["name","children"],"additionalProperties":false}`,
	`{"definitions":{"e":{"enum":["on","off"]}},"type":"array","items":{"$ref":"#/definitions/e"},"minItems":1,"maxItems":2}`,
	`{"type":"object","properties":{"ok":{"type":"boolean"},"error":{"anyOf":[{"type":"string","maxLength":10},{"type":"null"}]}},"required":["ok","error"],"additionalProperties":false}`,
	`{"type":"array","items":{"type":"array","items":{"type":"integer"},"maxItems":2},"maxItems":2}`,
	`{"type":"object","properties":{"é":{"type":"string","maxLength":2},"quote\"d":{"type":"integer"}},"required":["é","quote\"d"],"additionalProperties":false}`,
	`{"type":"string","enum":["<tag>","a&b","naïve"]}`,
	`{"title":"annotated","description":"annotations are ignored","type":"object","properties":{"v":{"type":"integer","description":"a value"}},"required":["v"],"additionalProperties":false}`,
	`{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string","minLength":1,"maxLength":4},"qty":{"type":"integer"},"price":{"type":"number"}},"required":["sku","qty","price"],"additionalProperties":false},"minItems":1,"maxItems":2},"total":{"type":"number"}},"required":["items","total"],"additionalProperties":false}`,
	`{"type":"object","properties":{"age":{"type":"integer","minimum":0,"maximum":130},"delta":{"type":"integer","exclusiveMinimum":-50,"exclusiveMaximum":50}},"required":["age","delta"],"additionalProperties":false}`,
	`{"type":"array","items":{"type":"integer","minimum":1000},"minItems":1,"maxItems":3}`,
	`{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"}`,
	`{"type":"object","properties":{"date":{"type":"string","pattern":"^\\d{4}-\\d{2}-\\d{2}$"},"code":{"type":"string","pattern":"^(ab|cd){1,4}$"},"free":{"type":"string","pattern":"^[^\"\\\\]{0,8}$"}},"required":["date","code","free"],"additionalProperties":false}`,
	`{"type":"object","properties":{"when":{"type":"string","format":"date-time"},"day":{"type":"string","format":"date"},"id":{"type":"string","format":"uuid"},"ip":{"type":"string","format":"ipv4"},"mail":{"type":"string","format":"email"}},"required":["when","day","id","ip","mail"],"additionalProperties":false}`,
	`true`,
}

// TestE2EStructuredOutput holds the random-weight SmolLM3-shaped model to each schema through OpenAI's
// Go SDK, at temperature 0 and 1 with several seeds: every answer must parse and validate with an
// independent validator, and end with finish_reason "stop". Only the constraint can make a random
// model's output valid.
func TestE2EStructuredOutput(t *testing.T) {
	rec, client, ctx := synthSDK(t)
	for i, schema := range structuredSchemas {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(schema), &v); err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			c.AssertFormat() // formats are checked, not annotations
			if err := c.AddResource("schema.json", v); err != nil {
				t.Fatal(err)
			}
			validator, err := c.Compile("schema.json")
			if err != nil {
				t.Fatal(err)
			}
			for _, run := range []struct {
				temp float64
				seed int64
			}{{0, 1}, {1, 1}, {1, 2}, {1, 3}} {
				params := openai.ChatCompletionNewParams{
					Model:               "smollm3",
					Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Answer in JSON.")},
					Temperature:         openai.Float(run.temp),
					Seed:                openai.Int(run.seed),
					MaxCompletionTokens: openai.Int(300),
					ReasoningEffort:     shared.ReasoningEffortNone,
					ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
						JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "answer", Schema: v, Strict: openai.Bool(true)}}},
				}
				resp, err := client.Chat.Completions.New(ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				choice := resp.Choices[0]
				_, res := rec.last(t)
				if choice.FinishReason != "stop" {
					t.Errorf("temperature %v seed %d: finish %q after %d tokens: %q", run.temp, run.seed, choice.FinishReason, len(res.Tokens), choice.Message.Content)
					continue
				}
				var out any
				if err := json.Unmarshal([]byte(choice.Message.Content), &out); err != nil {
					t.Errorf("temperature %v seed %d: not JSON: %q (%v)", run.temp, run.seed, choice.Message.Content, err)
					continue
				}
				if err := validator.Validate(out); err != nil {
					t.Errorf("temperature %v seed %d: %q does not validate: %v", run.temp, run.seed, choice.Message.Content, err)
				}
				if strings.TrimSpace(choice.Message.Content) != choice.Message.Content {
					t.Errorf("temperature %v seed %d: white space around the answer: %q", run.temp, run.seed, choice.Message.Content)
				}
				t.Logf("T=%v seed %d, %d tokens: %s", run.temp, run.seed, len(res.Tokens), choice.Message.Content)
			}
		})
	}
}

// TestE2EToolChoice holds the random-weight model to tool_choice "required" and to a named function:
// every answer must be tool calls, finish with "tool_calls", name a function offered (the named one
// when named), and carry arguments that validate against its parameters.
func TestE2EToolChoice(t *testing.T) {
	rec, client, ctx := synthSDK(t)
	params := map[string]string{
		"get_weather": `{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["C","F"]}},"required":["city","unit"],"additionalProperties":false}`,
		"add":         `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false}`,
		"tag":         `{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","maxLength":5},"maxItems":3}},"required":["tags"],"additionalProperties":false}`,
	}
	validators := map[string]*jsonschema.Schema{}
	var tools []openai.ChatCompletionToolUnionParam
	for _, name := range []string{"get_weather", "add", "tag"} {
		var v map[string]any
		if err := json.Unmarshal([]byte(params[name]), &v); err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(name+".json", v); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		validators[name] = s
		tools = append(tools, openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: name, Parameters: v}))
	}
	required := openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}
	choices := []struct {
		name      string
		choice    openai.ChatCompletionToolChoiceOptionUnionParam
		only      string
		parallel  bool
		maxTokens int64
	}{
		{"required, one call", required, "", false, 300},
		{"required, parallel calls", required, "", true, 1500},
		{"named", openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "add"}), "add", false, 300},
	}
	for _, ch := range choices {
		for _, run := range []struct {
			temp float64
			seed int64
		}{{0, 1}, {1, 1}, {1, 2}, {1, 3}, {1, 4}} {
			resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:               "smollm3",
				Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
				Temperature:         openai.Float(run.temp),
				Seed:                openai.Int(run.seed),
				MaxCompletionTokens: openai.Int(ch.maxTokens),
				ReasoningEffort:     shared.ReasoningEffortNone,
				Tools:               tools,
				ParallelToolCalls:   openai.Bool(ch.parallel),
				ToolChoice:          ch.choice,
			})
			if err != nil {
				t.Fatalf("%s: %v %s", ch.name, err, rawError(err))
			}
			c := resp.Choices[0]
			_, res := rec.last(t)
			if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) == 0 {
				t.Errorf("%s T=%v seed %d: finish %q, %d calls, after %d tokens: %q", ch.name, run.temp, run.seed, c.FinishReason,
					len(c.Message.ToolCalls), len(res.Tokens), res.Answer)
				continue
			}
			if !ch.parallel && len(c.Message.ToolCalls) != 1 {
				t.Errorf("%s: %d calls with parallel_tool_calls false", ch.name, len(c.Message.ToolCalls))
			}
			for _, call := range c.Message.ToolCalls {
				v, ok := validators[call.Function.Name]
				if !ok || (ch.only != "" && call.Function.Name != ch.only) {
					t.Errorf("%s: call of %q", ch.name, call.Function.Name)
					continue
				}
				var args any
				if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil {
					t.Errorf("%s: arguments %q: %v", ch.name, call.Function.Arguments, err)
					continue
				}
				if err := v.Validate(args); err != nil {
					t.Errorf("%s: arguments %s do not validate: %v", ch.name, call.Function.Arguments, err)
				}
			}
			t.Logf("%s T=%v seed %d, %d tokens: %q", ch.name, run.temp, run.seed, len(res.Tokens), res.Answer)
		}
	}
}

// rawError is the body of an API error, for a test's message.
func rawError(err error) string {
	if e, ok := err.(*openai.Error); ok {
		return e.RawJSON()
	}
	return ""
}

// TestE2EGrammar holds the random-weight model to GBNF grammars (llama.cpp's grammar field) on both
// endpoints; each answer must match a regular expression of the same language.
func TestE2EGrammar(t *testing.T) {
	_, client, ctx := synthSDK(t)
	tests := []struct{ grammar, re string }{
		{`root ::= ("yes" | "no") " " [0-9]{1,3}`, `^(yes|no) [0-9]{1,3}$`},
		{`root ::= "[" item ("," item){0,3} "]"` + "\nitem ::= [a-z]{1,4}", `^\[[a-z]{1,4}(,[a-z]{1,4}){0,3}\]$`},
		{`root ::= [^\n"]{0,20} "."`, `^[^\n"]{0,20}\.$`},
		{`root ::= "é" [α-ω]{2}`, `^é[α-ω]{2}$`},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(tt.re)
		for _, seed := range []int64{1, 2} {
			chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "smollm3",
				Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Answer.")},
				Temperature: openai.Float(1), Seed: openai.Int(seed), MaxCompletionTokens: openai.Int(100),
				ReasoningEffort: shared.ReasoningEffortNone}, option.WithJSONSet("grammar", tt.grammar))
			if err != nil {
				t.Fatalf("%s: %v %s", tt.grammar, err, rawError(err))
			}
			comp, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "smollm3",
				Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon")},
				Temperature: openai.Float(1), Seed: openai.Int(seed), MaxTokens: openai.Int(100)}, option.WithJSONSet("grammar", tt.grammar))
			if err != nil {
				t.Fatalf("%s: %v %s", tt.grammar, err, rawError(err))
			}
			for what, c := range map[string]struct{ text, finish string }{
				"chat":       {chat.Choices[0].Message.Content, string(chat.Choices[0].FinishReason)},
				"completion": {comp.Choices[0].Text, string(comp.Choices[0].FinishReason)}} {
				if c.finish != "stop" || !re.MatchString(c.text) {
					t.Errorf("%s, %s, seed %d: %q (finish %s) does not match %s", tt.grammar, what, seed, c.text, c.finish, tt.re)
				}
			}
		}
	}
}
