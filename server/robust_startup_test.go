package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"html"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"smolchat/internal/testutil"
	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// The tests in this file run the real smolchat binary, built from this checkout, as a user would: the
// serve command's flags, its load path and its logs are the subject.

// buildSmolchat builds the smolchat binary into dir, or skips when there is no Go toolchain.
func buildSmolchat(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: no go command to build smolchat with (%v)", err)
	}
	bin := filepath.Join(dir, "smolchat")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = testutil.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var servingURL = regexp.MustCompile(`msg="serving[^"]*" url=(http://[^ ]+)`)

// serveProcess is a running `smolchat serve`.
type serveProcess struct {
	cmd  *exec.Cmd
	logs *testutil.LogBuffer
	base string
}

// startServe runs `smolchat serve` with args (prepare may adjust the command first) and waits until it
// logs its address.
func startServe(t *testing.T, bin string, prepare func(*exec.Cmd), args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{logs: &testutil.LogBuffer{}}
	p.cmd = exec.Command(bin, append([]string{"serve", "--port", "0"}, args...)...)
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.logs
	if prepare != nil {
		prepare(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := servingURL.FindStringSubmatch(p.logs.String()); m != nil {
			p.base = m[1]
			return p
		}
		select {
		case <-exited:
			t.Fatalf("smolchat serve exited:\n%s", p.logs.String())
		default:
		}
	}
	t.Fatalf("smolchat serve never logged its address:\n%s", p.logs.String())
	return nil
}

// health polls /health until it stops saying "loading" and returns the last status and body.
func (p *serveProcess) health(t *testing.T) (int, map[string]any) {
	t.Helper()
	var body map[string]any
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := httpClient.Get(p.base + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body = nil
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body["status"] != "loading" {
			return resp.StatusCode, body
		}
	}
	t.Fatalf("/health still says loading: %v\n%s", body, p.logs.String())
	return 0, nil
}

// writeTinyModel writes a one-layer llama-style model whose tensors are all of type typ (norms F32),
// without a tokenizer: enough for the model checks that run first.
func writeTinyModel(t *testing.T, path, arch string, typ quant.Type) {
	t.Helper()
	const dim, ff, vocab = 32, 64, 32
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	w.AddKV("general.architecture", arch)
	for k, v := range map[string]uint32{"embedding_length": dim, "block_count": 1, "attention.head_count": 4,
		"attention.head_count_kv": 2, "feed_forward_length": ff, "context_length": 256} {
		w.AddKV(arch+"."+k, v)
	}
	type tensor struct {
		name string
		cols uint64
		rows uint64
		typ  quant.Type
	}
	ts := []tensor{{"token_embd.weight", dim, vocab, typ}, {"output_norm.weight", dim, 1, quant.F32},
		{"blk.0.attn_norm.weight", dim, 1, quant.F32}, {"blk.0.attn_q.weight", dim, dim, typ},
		{"blk.0.attn_k.weight", dim, dim / 2, typ}, {"blk.0.attn_v.weight", dim, dim / 2, typ},
		{"blk.0.attn_output.weight", dim, dim, typ}, {"blk.0.ffn_norm.weight", dim, 1, quant.F32},
		{"blk.0.ffn_gate.weight", dim, ff, typ}, {"blk.0.ffn_up.weight", dim, ff, typ}, {"blk.0.ffn_down.weight", ff, dim, typ}}
	for _, tn := range ts {
		dims := []uint64{tn.cols, tn.rows}
		if tn.rows == 1 {
			dims = dims[:1]
		}
		if err := w.AddTensor(tn.name, tn.typ, dims); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, tn := range ts {
		rb, err := tn.typ.RowBytes(int(tn.cols))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteTensor(tn.name, make([]byte, rb*int(tn.rows))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestServeStartup runs `smolchat serve` from a freshly built binary: it listens on 127.0.0.1 unless
// told otherwise; --host 0.0.0.0 without --api-key logs a warning; and a model file that cannot be used
// (truncated, corrupted header, wrong architecture, unsupported quant type, a directory, missing,
// unreadable) leaves the server up with /health (503, status "error") and the page naming the problem.
func TestServeStartup(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds the smolchat binary")
	}
	dir := t.TempDir()
	// Readable by every user, for the unreadable-file case run as another user.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	bin := buildSmolchat(t, dir)
	data := func() string {
		d, err := os.MkdirTemp(dir, "data-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
		return d
	}
	missing := filepath.Join(dir, "missing.gguf")

	t.Run("loopback by default", func(t *testing.T) {
		p := startServe(t, bin, nil, "--model", missing, "--data-dir", data())
		if !strings.Contains(p.base, "127.0.0.1") {
			t.Fatalf("serving on %s", p.base)
		}
		if strings.Contains(p.logs.String(), "without an API key") {
			t.Errorf("warning on loopback:\n%s", p.logs.String())
		}
		// Not reachable on this machine's other addresses.
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.base, "http://"))
		addrs, _ := net.InterfaceAddrs()
		tried := 0
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok || ipnet.IP.IsLoopback() || ipnet.IP.To4() == nil {
				continue
			}
			tried++
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ipnet.IP.String(), port), time.Second); err == nil {
				c.Close()
				t.Errorf("the server answers on %s, not only on loopback", ipnet.IP)
			}
		}
		t.Logf("serving on %s; refused on %d non-loopback addresses", p.base, tried)
	})

	t.Run("open to the network without a key warns", func(t *testing.T) {
		p := startServe(t, bin, nil, "--host", "0.0.0.0", "--model", missing, "--data-dir", data())
		const warning = "the API is open to the network without an API key"
		if !strings.Contains(p.logs.String(), warning) || !strings.Contains(p.logs.String(), "level=WARN") {
			t.Fatalf("no warning for --host 0.0.0.0 without --api-key:\n%s", p.logs.String())
		}
		q := startServe(t, bin, nil, "--host", "0.0.0.0", "--api-key", "k", "--model", missing, "--data-dir", data())
		if strings.Contains(q.logs.String(), warning) {
			t.Fatalf("warning although --api-key is set:\n%s", q.logs.String())
		}
	})

	// Bad model files.
	good := filepath.Join(dir, "good.gguf")
	writeTinyModel(t, good, "llama", quant.F32)
	goodBytes, _ := os.ReadFile(good)
	variant := func(name string, edit func([]byte) []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, edit(bytes.Clone(goodBytes)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrongArch := filepath.Join(dir, "gpt2.gguf")
	writeTinyModel(t, wrongArch, "gpt2", quant.F32)
	q41 := filepath.Join(dir, "q4_1.gguf")
	writeTinyModel(t, q41, "llama", quant.Q4_1)
	unreadable := variant("unreadable.gguf", func(b []byte) []byte { return b })
	os.Chmod(unreadable, 0o000)
	cases := []struct {
		name, path, want string
		asOther          bool // run as another user (root reads anything)
	}{
		{"truncated", variant("truncated.gguf", func(b []byte) []byte { return b[:len(b)/2] }), "truncated", false},
		{"not GGUF (bad magic)", variant("magic.gguf", func(b []byte) []byte { copy(b, "GGML"); return b }), "magic", false},
		{"unknown version", variant("version.gguf", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 99); return b }), "version", false},
		{"absurd tensor count", variant("count.gguf", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 1<<60); return b }), "tensor", false},
		{"garbage", variant("garbage.gguf", func(b []byte) []byte { return bytes.Repeat([]byte{0xA5}, 4096) }), "magic", false},
		{"empty", variant("empty.gguf", func(b []byte) []byte { return nil }), "empty", false},
		{"wrong architecture", wrongArch, `architecture "gpt2" is not supported`, false},
		{"unsupported quant type", q41, "Q4_1", false},
		{"a directory", dir, "is a directory", false},
		{"missing", missing, "no such file", false},
		{"unreadable", unreadable, "permission denied", os.Geteuid() == 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var prepare func(*exec.Cmd)
			if tc.asOther {
				if !runAsNobody(&prepare) {
					t.Skip("skipping: running as root, which reads any file, and cannot run the server as another user here")
				}
			}
			p := startServe(t, bin, prepare, "--model", tc.path, "--cpu", "--data-dir", data())
			status, body := p.health(t)
			msg, _ := body["error"].(string)
			if status != 503 || body["status"] != "error" || !strings.Contains(msg, tc.want) {
				t.Fatalf("/health: %d %v; want 503, status error, an error naming %q\n%s", status, body, tc.want, p.logs.String())
			}
			// The log line is written before /health changes, but reaches this process through a pipe.
			logged := false
			for deadline := time.Now().Add(5 * time.Second); !logged && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				logged = strings.Contains(p.logs.String(), "loading the model failed")
			}
			if !logged {
				t.Errorf("the log does not report the failure:\n%s", p.logs.String())
			}
			resp, err := httpClient.Get(p.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(page), html.EscapeString(msg)) {
				t.Errorf("the page (status %d) does not show the load error %q", resp.StatusCode, msg)
			}
			// The API says the same, with a 503 rather than a hang.
			out := callAPI(t, p.base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
			if out.status != 503 || out.err == nil || out.err.Code == nil || *out.err.Code != "model_load_failed" {
				t.Errorf("chat with a failed model: %v", out)
			}
			t.Logf("%s: /health error %q", tc.name, msg)
		})
	}
}
