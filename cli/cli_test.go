package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestHelpAndUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{"help lists commands", []string{"help"}, 0, "inspect", "", false},
		{"help names serve as default", []string{"--help"}, 0, "no command = serve", "", false},
		{"command help", []string{"help", "generate"}, 0, "--prompt", "", false},
		{"command -h", []string{"inspect", "-h"}, 0, "Usage: smolchat inspect FILE", "", false},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, true},
		{"unknown flag", []string{"inspect", "--nope", "x"}, 2, "", "flag provided but not defined: -nope", true},
		{"missing argument", []string{"inspect"}, 2, "", "inspect takes one GGUF file", true},
		{"missing file", []string{"inspect", "/nonexistent.gguf"}, 1, "", "no such file", true},
		{"generate needs a model", []string{"generate", "--prompt", "hi"}, 2, "", "--model FILE is required", true},
		{"exclusive backends", []string{"generate", "--model", "x.gguf", "--prompt", "hi", "--cpu", "--gpu"}, 2, "", "--cpu and --gpu are exclusive", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI("", tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			if tc.noStdout && out != "" {
				t.Errorf("an error wrote to stdout: %q", out)
			}
		})
	}
}

func TestEnvTwins(t *testing.T) {
	if EnvName("gpu-adapter") != "SMOLCHAT_GPU_ADAPTER" {
		t.Errorf("EnvName = %s", EnvName("gpu-adapter"))
	}
	// An environment twin fills a flag that the command line leaves unset...
	t.Setenv("SMOLCHAT_JSON", "true")
	p := tinyModel(t)
	code, out, errs := runCLI("", "inspect", p)
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("SMOLCHAT_JSON=true did not select JSON output: exit %d, stderr %s", code, errs)
	}
	// ...and the command line wins over it.
	if code, out, _ := runCLI("", "inspect", "--json=false", p); code != 0 || strings.HasPrefix(out, "{") {
		t.Errorf("--json=false did not override SMOLCHAT_JSON")
	}
	t.Setenv("SMOLCHAT_JSON", "maybe")
	if code, _, errs := runCLI("", "inspect", p); code != 2 || !strings.Contains(errs, "SMOLCHAT_JSON") {
		t.Errorf("a bad environment value: exit %d, stderr %s", code, errs)
	}
}

var (
	tinyOnce sync.Once
	tinyPath string
	tinyErr  string
)

// tinyModel synthesizes the smollm3-tiny preset once per test binary.
func tinyModel(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			tinyErr = err.Error()
			return
		}
		tinyPath = filepath.Join(dir, "tiny.gguf")
		if code, _, errs := runCLI("", "synth", "--preset", "smollm3-tiny", "--out", tinyPath, "--seed", "3"); code != 0 {
			tinyErr = errs
		}
	})
	if tinyErr != "" {
		t.Fatalf("synth: %s", tinyErr)
	}
	return tinyPath
}

func TestInspectSynth(t *testing.T) {
	p := tinyModel(t)
	code, out, errs := runCLI("", "inspect", "--json", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Version      int            `json:"version"`
		TypeCounts   map[string]int `json:"type_counts"`
		Quantization string         `json:"quantization"`
		Config       struct {
			Arch   string
			NoRope []bool
		} `json:"config"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("inspect --json is not JSON: %v\n%s", err, out)
	}
	if got.Version != 3 || got.Quantization != "Q4_K_M" || got.Config.Arch != "smollm3" ||
		got.TypeCounts["Q4_K"] == 0 || got.TypeCounts["Q6_K"] == 0 || got.TypeCounts["F32"] == 0 {
		t.Errorf("inspect --json: %+v", got)
	}
	if len(got.Config.NoRope) != 4 || !got.Config.NoRope[3] {
		t.Errorf("NoPE layers %v, want layer 3", got.Config.NoRope)
	}
	// Long arrays are summarized, not dumped.
	if toks, ok := got.Metadata["tokenizer.ggml.tokens"].(map[string]any); !ok || toks["len"].(float64) != 128256 {
		t.Errorf("tokens summary %v", got.Metadata["tokenizer.ggml.tokens"])
	}
	code, out, _ = runCLI("", "inspect", p)
	if code != 0 || !strings.Contains(out, "types: Q4_K×") || !strings.Contains(out, "model: smollm3 Q4_K_M, 4 layers") {
		t.Errorf("inspect text:\n%s", out)
	}
}
