package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"smolchat/model"
	"smolchat/model/chat"
	"smolchat/model/gguf"
)

func init() {
	var (
		model, messages, date *string
		tools                 *string
		think, noThink        *bool
	)
	register(&Command{
		Name:    "prompt",
		Summary: "print the prompt the model's chat template makes of a conversation",
		Usage:   "--model FILE --messages FILE.json [--tools FILE.json] [--think|--no-think] [--date YYYY-MM-DD]",
		Flags: func(fs *flag.FlagSet) {
			model = fs.String("model", "", "GGUF model `file` (its architecture and chat template pick the renderer)")
			messages = fs.String("messages", "", "OpenAI-style JSON `file` of messages, [{\"role\": \"user\", \"content\": \"...\"}]; - reads stdin")
			think = fs.Bool("think", false, "SmolLM3 reasoning mode on (/think)")
			noThink = fs.Bool("no-think", false, "SmolLM3 reasoning mode off (/no_think)")
			date = fs.String("date", "", "the date SmolLM3's template writes, `YYYY-MM-DD` (default today)")
			tools = fs.String("tools", "", "OpenAI-style JSON `file` of tools, [{\"type\": \"function\", \"function\": {...}}], for the template's tools section")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			if *model == "" {
				return usageErr("--model FILE is required")
			}
			if *messages == "" {
				return usageErr("--messages FILE.json is required")
			}
			th, err := thinkFlag(*think, *noThink)
			if err != nil {
				return err
			}
			opt := chat.DefaultOptions()
			opt.EnableThinking = th
			if *date != "" {
				d, err := time.Parse("2006-01-02", *date)
				if err != nil {
					return usageErr("--date %q: want YYYY-MM-DD", *date)
				}
				opt.Date = d
			}

			var data []byte
			if *messages == "-" {
				data, err = io.ReadAll(env.Stdin)
			} else {
				data, err = os.ReadFile(*messages)
			}
			if err != nil {
				return fmt.Errorf("reading messages: %w", err)
			}
			msgs, err := parseMessages(data)
			if err != nil {
				return fmt.Errorf("messages %s: %w", *messages, err)
			}

			if *tools != "" {
				if opt.Tools, err = readTools(*tools); err != nil {
					return err
				}
			}

			r, err := rendererFor(env, *model)
			if err != nil {
				return err
			}
			p, err := r.Render(msgs, opt)
			if err != nil {
				return err
			}
			_, err = io.WriteString(env.Stdout, p.String())
			return err
		},
	})
}

// readTools reads an OpenAI tools array, keeping each tool's JSON as written (its key order is what
// the template shows).
func readTools(path string) ([]json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading tools: %w", err)
	}
	var tools []json.RawMessage
	if err := json.Unmarshal(data, &tools); err != nil {
		return nil, fmt.Errorf("tools %s: want a JSON array of tool objects: %w", path, err)
	}
	return tools, nil
}

// rendererFor picks the chat template renderer from a model file's metadata.
func rendererFor(env *Env, path string) (chat.Renderer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	template, _ := f.String("tokenizer.chat_template")
	r := chat.ForModel(model.ChatFormat(arch), template)
	if !r.Recognised() && template != "" {
		env.Log.Warn("chat template not recognised: rendering the messages as raw text", "model", path, "arch", arch)
	}
	env.Log.Debug("chat template", "renderer", r.Name(), "arch", arch)
	return r, nil
}

// parseMessages reads an OpenAI-style message list. A content may be a string, null (an assistant turn
// that only called tools), or a list of text parts, joined with newlines as llama.cpp's server does.
func parseMessages(data []byte) ([]chat.Message, error) {
	var raw []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("want a JSON array of {\"role\", \"content\"} objects: %w", err)
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON array")
	}
	msgs := make([]chat.Message, len(raw))
	for i, m := range raw {
		text, err := messageText(m.Content)
		if err != nil {
			return nil, fmt.Errorf("message %d: content: %w", i, err)
		}
		msgs[i] = chat.Message{Role: m.Role, Content: text}
	}
	return msgs, nil
}

func messageText(content json.RawMessage) (string, error) {
	c := bytes.TrimSpace(content)
	if len(c) == 0 || string(c) == "null" {
		return "", nil
	}
	switch c[0] {
	case '"':
		var s string
		err := json.Unmarshal(c, &s)
		return s, err
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(c, &parts); err != nil {
			return "", err
		}
		var b strings.Builder
		for j, p := range parts {
			if p.Type != "text" || p.Text == nil {
				return "", fmt.Errorf("part %d: type %q: only text parts are supported", j, p.Type)
			}
			if j > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(*p.Text)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("want a string, null or a list of text parts, got %.20s", c)
}
