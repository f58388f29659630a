package cli

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"smolchat/internal/testutil"
)

// serveFlags parses serve's flags.
func serveFlags(t *testing.T, args ...string) *serveOptions {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	o := addServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

var logURL = regexp.MustCompile(`url=(http://[0-9.:]+)`)

// TestServeRealModel serves a tiny synthesized SmolLM3 on the CPU: the server listens before the model is
// ready, reports ready, answers the API, and shuts down when its context ends.
func TestServeRealModel(t *testing.T) {
	model := tinyModel(t)
	o := serveFlags(t, "--model", model, "--cpu", "--port", "0", "--host", "127.0.0.1", "--data-dir", t.TempDir(), "--ctx", "1024")
	var logs testutil.LogBuffer
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.run(ctx, env) }()

	var base string
	for start := time.Now(); base == "" && time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		if m := logURL.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no URL logged:\n%s", logs.String())
	}
	client := &http.Client{Timeout: 60 * time.Second}
	ready := false
	for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(base + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatalf("the model never became ready:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "msg=ready") || !strings.Contains(logs.String(), "backend=cpu") {
		t.Fatalf("no ready line with the backend:\n%s", logs.String())
	}

	resp, err := client.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(out.Choices) != 1 || out.Usage.CompletionTokens == 0 {
		t.Fatalf("chat completion: status %d, %+v", resp.StatusCode, out)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
}

func TestServeBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cpu and gpu", []string{"--cpu", "--gpu"}, "exclusive"},
		{"bad port", []string{"--port", "70000"}, "not a port"},
		{"no queue", []string{"--max-queue", "0"}, "max-queue"},
		{"allowed host with a scheme", []string{"--allowed-hosts", "localhost,http://chat.example"}, "not a host name"},
		{"no write timeout", []string{"--stream-write-timeout", "0s"}, "stream-write-timeout"},
		{"system prompt file missing", []string{"--system", "@/nonexistent/system.txt"}, "--system @/nonexistent/system.txt"},
		{"system prompt too long", []string{"--system", strings.Repeat("x", 20001)}, "--system: the system prompt is 20,001 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := serveFlags(t, append(tt.args, "--data-dir", t.TempDir())...)
			env := &Env{Stdout: io.Discard, Stderr: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			err := o.run(context.Background(), env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one about %q", err, tt.want)
			}
		})
	}
}

// TestServeSecurityFlags: --allowed-hosts (comma-separated, or from its environment twin), a --host name
// and --metrics-public reach the server's configuration.
func TestServeSecurityFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     string // SMOLCHAT_ALLOWED_HOSTS
		hosts   []string
		metrics bool
	}{
		{"defaults", nil, "", nil, false},
		{"list", []string{"--allowed-hosts", " chat.example , mybox.lan:8080,"}, "", []string{"chat.example", "mybox.lan:8080"}, false},
		{"environment twin", nil, "chat.example", []string{"chat.example"}, false},
		{"host name", []string{"--host", "mybox.lan"}, "", []string{"mybox.lan"}, false},
		{"host address", []string{"--host", "0.0.0.0"}, "", nil, false},
		{"metrics public", []string{"--metrics-public"}, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(EnvName("allowed-hosts"), tt.env)
			}
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			o := addServeFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := applyEnv(fs); err != nil {
				t.Fatal(err)
			}
			cfg := o.config(&Env{})
			if !slices.Equal(cfg.AllowedHosts, tt.hosts) || cfg.MetricsPublic != tt.metrics {
				t.Fatalf("allowed hosts %q, metrics public %v; want %q, %v", cfg.AllowedHosts, cfg.MetricsPublic, tt.hosts, tt.metrics)
			}
		})
	}
}

// TestReadSystem: --system takes the text itself or, after an @, a file's contents.
func TestReadSystem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "system.txt")
	if err := os.WriteFile(file, []byte("From a file.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ arg, want string }{
		{"", ""},
		{"  Be brief. ", "Be brief."},
		{"@" + file, "From a file."},
	} {
		got, err := readSystem(tc.arg)
		if err != nil || got != tc.want {
			t.Errorf("readSystem(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}
