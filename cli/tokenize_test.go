package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"smolchat/internal/testutil"
)

func runTokenize(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(append([]string{"tokenize"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenizeCommand(t *testing.T) {
	// Expected ids from llama.cpp (node ref.mjs tokenize FILE TEXT [--special] [--no-bos]).
	tests := []struct {
		file  string
		args  []string
		stdin string
		want  string
	}{
		{"ggml-vocab-llama-bpe.gguf", []string{"Hello world! <|begin_of_text|>", "--special"}, "", "[128000,9906,1917,0,220,128000]\n"},
		{"ggml-vocab-llama-bpe.gguf", []string{"Hello world! <|begin_of_text|>"}, "", "[128000,9906,1917,0,83739,7413,3659,4424,91,29]\n"},
		{"ggml-vocab-llama-bpe.gguf", []string{"--no-bos", "Hello world"}, "", "[9906,1917]\n"},
		{"ggml-vocab-llama-bpe.gguf", []string{"--no-bos", ""}, "", "[]\n"},
		{"ggml-vocab-llama-bpe.gguf", []string{"-"}, "Hello world", "[128000,9906,1917]\n"},
		{"stories260K.gguf", []string{"Once upon a time"}, "", "[1,403,407,261,378]\n"},
		{"smollm3-tiny-synthetic-Q4_K_M.gguf", []string{"Once upon a time"}, "", "[128000,12805,5304,264,892]\n"},
	}
	for _, tt := range tests {
		model := testutil.SharedFile(t, tt.file)
		code, out, errOut := runTokenize(tt.stdin, append([]string{"--model", model}, tt.args...)...)
		if code != 0 || out != tt.want {
			t.Errorf("tokenize %s %q: exit %d, stdout %q, stderr %q; want %q", tt.file, tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestTokenizeCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.gguf")
	tests := []struct {
		args     []string
		code     int
		errorHas string
	}{
		{[]string{"hello"}, 2, "--model FILE is required"},
		{[]string{"--model", missing}, 2, "exactly one TEXT"},
		{[]string{"--model", missing, "a", "b"}, 2, "exactly one TEXT"},
		{[]string{"--model", missing, "hello"}, 1, "missing.gguf"},
	}
	for _, tt := range tests {
		code, out, errOut := runTokenize("", tt.args...)
		if code != tt.code || out != "" || !strings.Contains(errOut, tt.errorHas) {
			t.Errorf("tokenize %q: exit %d, stdout %q, stderr %q; want exit %d and an error with %q", tt.args, code, out, errOut, tt.code, tt.errorHas)
		}
	}
}
