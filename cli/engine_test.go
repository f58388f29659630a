package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"smolchat/internal/testutil"
)

func TestChatSession(t *testing.T) {
	p := tinyModel(t)
	in := "Hello\n/no_think\nAgain\n/reset\n/quit\n"
	code, out, errs := runCLI(in, "chat", "--model", p, "--cpu", "--n", "4", "--temp", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"[think] > ", "(reasoning off)", "[no_think] > ", "(conversation cleared)", "4 tokens", "tok/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("chat output lacks %q:\n%s", want, out)
		}
	}
	// The second turn reuses the KV cache of the first (the system block changes with the mode, so
	// only part of it): the stats line reports cached tokens.
	if !strings.Contains(out, "cached)") {
		t.Errorf("no cache report:\n%s", out)
	}
}

// TestChatCommands: /help lists the commands instead of going to the model, and /think on a model
// without a reasoning mode (stories260K) says it changes nothing.
func TestChatCommands(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	code, out, errs := runCLI("/help\n/think\n/quit\n", "chat", "--model", stories, "--cpu", "--n", "4", "--temp", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"/help lists the commands", "  /reset      forget the conversation",
		"(stories260K.gguf has no reasoning mode: /think changes nothing)"} {
		if !strings.Contains(out, want) {
			t.Errorf("chat output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "tokens ·") || strings.Contains(out, "[think]") {
		t.Errorf("a command reached the model, or the prompt offers reasoning:\n%s", out)
	}
}

func TestGenerateJSONContract(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	code, out, errs := runCLI("", "generate", "--model", stories, "--raw", "--prompt", "Once upon a time",
		"--temp", "0", "--n", "32", "--json", "--cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		PromptTokens []int32 `json:"prompt_tokens"`
		Tokens       []int32 `json:"tokens"`
		Text         string  `json:"text"`
		FinishReason string  `json:"finish_reason"`
		Backend      string  `json:"backend"`
		Timings      struct {
			PromptTPS float64 `json:"prompt_tokens_per_second"`
			TPS       float64 `json:"tokens_per_second"`
		} `json:"timings"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	// llama.cpp's greedy continuation (../shared/testdata/README.md).
	want := "432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385 328 432 358 394"
	if fmt.Sprint(got.PromptTokens) != "[1 403 407 261 378]" || strings.Trim(fmt.Sprint(got.Tokens), "[]") != want {
		t.Errorf("prompt %v tokens %v", got.PromptTokens, got.Tokens)
	}
	if got.FinishReason != "length" || got.Backend != "cpu" || got.Timings.TPS <= 0 || got.Timings.PromptTPS <= 0 ||
		!strings.HasPrefix(got.Text, ", there was a little girl named Lily.") {
		t.Errorf("generate --json: %+v", got)
	}
}

func TestLogitsJSONContract(t *testing.T) {
	p := tinyModel(t)
	code, out, errs := runCLI("", "logits", "--model", p, "--tokens", "128011,882,198,9906", "--top", "3", "--json", "--cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Tokens    []int32 `json:"tokens"`
		Positions []struct {
			Pos int          `json:"pos"`
			Top [][2]float64 `json:"top"`
		} `json:"positions"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(got.Positions) != 4 || len(got.Positions[3].Top) != 3 || got.Positions[3].Pos != 3 ||
		got.Positions[0].Top[0][1] < got.Positions[0].Top[1][1] {
		t.Errorf("logits --json: %+v", got)
	}
	if code, _, errs := runCLI("", "logits", "--model", p, "--tokens", "1,999999", "--cpu"); code == 0 || !strings.Contains(errs, "outside the vocabulary") {
		t.Errorf("out-of-range token: exit %d, %s", code, errs)
	}
}

// TestLogitsNumerics checks that --numerics reaches the CPU backend: each mode's logits are close to the
// default's but not identical, and an unknown mode is an error.
func TestLogitsNumerics(t *testing.T) {
	p := tinyModel(t)
	top := func(args ...string) [][2]float64 {
		t.Helper()
		code, out, errs := runCLI("", append([]string{"logits", "--model", p, "--tokens", "128011,882,198,9906,25,11", "--top", "3", "--json", "--cpu"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var got struct {
			Positions []struct {
				Top [][2]float64 `json:"top"`
			} `json:"positions"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		return got.Positions[len(got.Positions)-1].Top
	}
	def := top()
	for _, mode := range []string{"llama", "exact"} {
		got := top("--numerics", mode)
		if def[0] == got[0] {
			t.Errorf("--numerics %s gave the default mode's logits exactly (%v): the option did not reach the backend", mode, def[0])
		}
		if d := math.Abs(def[0][1]-got[0][1]) / math.Max(1, math.Abs(def[0][1])); d > 0.2 {
			t.Errorf("top logit %v with --numerics %s, %v without: too far apart", got[0], mode, def[0])
		}
	}
	if code, _, errs := runCLI("", "logits", "--model", p, "--tokens", "1,2", "--cpu", "--numerics", "f16"); code == 0 || !strings.Contains(errs, `--numerics "f16"`) {
		t.Errorf("--numerics f16: exit %d, %s", code, errs)
	}
}
