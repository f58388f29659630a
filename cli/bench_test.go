package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"smolchat/internal/testutil"
)

func TestBenchDepth(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	code, out, errs := runCLI("", "bench", "--model", stories, "--cpu", "--pp", "8", "--tg", "4", "--depth", "16", "--reps", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got benchJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bench --json is not JSON: %v\n%s", err, out)
	}
	if got.Depth != 16 || got.PPRate <= 0 || got.TGRate <= 0 {
		t.Errorf("bench --depth 16: %+v", got)
	}
}

// TestBenchSeqs: --seqs 3 times generation steps of three sequences decoding together, each after its
// own --depth positions, on either backend.
func TestBenchSeqs(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	for _, backend := range []string{"--cpu", "--gpu"} {
		code, out, errs := runCLI("", "bench", "--model", stories, backend, "--gpu-tune", "off", "--pp", "0", "--tg", "4", "--depth", "70", "--seqs", "3", "--reps", "1", "--json")
		if code != 0 {
			if backend == "--gpu" && strings.Contains(errs, "no suitable GPU adapter") {
				t.Skipf("no WebGPU adapter: %s", errs)
			}
			t.Fatalf("%s: exit %d: %s", backend, code, errs)
		}
		var got benchJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: bench --json is not JSON: %v\n%s", backend, err, out)
		}
		if got.Seqs != 3 || got.Depth != 70 || got.TGRate <= 0 || len(got.TGRuns) != 1 {
			t.Errorf("%s: bench --seqs 3: %+v", backend, got)
		}
	}
	if code, _, errs := runCLI("", "bench", "--model", stories, "--cpu", "--seqs", "0"); code != 2 || !strings.Contains(errs, "--seqs") {
		t.Errorf("--seqs 0: exit %d, %q; want a usage error naming --seqs", code, errs)
	}
}

func TestBenchProfileJSON(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	code, out, errs := runCLI("", "bench", "--model", stories, "--gpu", "--gpu-tune", "off", "--profile", "--pp", "8", "--depth", "4", "--reps", "1", "--json")
	if code != 0 {
		if strings.Contains(errs, "no suitable GPU adapter") {
			t.Skipf("no WebGPU adapter: %s", errs)
		}
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Backend        string  `json:"backend"`
		Depth          int     `json:"depth"`
		PrefillTokens  int     `json:"prefill_tokens"`
		DecodeSeconds  float64 `json:"decode_seconds_per_token"`
		PrefillSeconds float64 `json:"prefill_seconds_per_token"`
		Rows           []struct {
			Step   string `json:"step"`
			Decode struct {
				Share float64 `json:"share"`
			} `json:"decode"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bench --profile --json is not JSON: %v\n%s", err, out)
	}
	if got.Backend != "gpu" || got.Depth != 4 || got.PrefillTokens != 8 || got.DecodeSeconds <= 0 || got.PrefillSeconds <= 0 || len(got.Rows) == 0 {
		t.Errorf("bench --profile --json: %+v", got)
	}
}

// TestBenchTuning runs bench --gpu twice over one tuning file: the first load times the kernel
// variants of stories260K's five weight shapes (a mat-vec choice each, its few-token variants' shape for
// the parallel streams, and a mat-mat one on a GPU: a CPU-type adapter runs every step through the
// mat-vec), the second reads them; --gpu-tune redo times them again.
func TestBenchTuning(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	file := filepath.Join(t.TempDir(), "tune.json")
	shapes := 0 // choices: 5 mat-vec ones, 5 few-token ones, and 5 mat-mat ones on a GPU
	for i, c := range []struct {
		mode          string
		timed, cached bool
	}{{"auto", true, false}, {"auto", false, true}, {"redo", true, false}} {
		// A budget no machine reaches: the counts below must not depend on the machine's speed.
		code, out, errs := runCLI("", "bench", "--model", stories, "--gpu", "--gpu-tune", c.mode, "--gpu-tune-file", file, "--gpu-tune-budget", "1h",
			"--pp", "8", "--tg", "2", "--reps", "1", "--json")
		if code != 0 {
			if strings.Contains(errs, "no suitable GPU adapter") {
				t.Skipf("no WebGPU adapter: %s", errs)
			}
			t.Fatalf("run %d: exit %d: %s", i, code, errs)
		}
		var got benchJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("bench --json is not JSON: %v\n%s", err, out)
		}
		tu := got.Tuning
		if tu == nil {
			t.Fatalf("run %d (--gpu-tune %s): no tuning report", i, c.mode)
		}
		if i == 0 {
			// The adapter is "name (type, api)": a cpu one has no mat-mat to tune.
			shapes = 15
			if strings.Contains(got.Adapter, "(cpu, ") {
				shapes = 10
			}
			mv, few := 0, 0
			for _, ch := range tu.Choices {
				switch {
				case strings.HasPrefix(ch.Shape, "matvec few "):
					few++
				case strings.HasPrefix(ch.Shape, "matvec "):
					mv++
				}
			}
			if mv != 5 || few != 5 || len(tu.Choices) != shapes {
				t.Fatalf("on %s: choices %+v; want a mat-vec and a few-token choice for each of the 5 shapes, %d in all", got.Adapter, tu.Choices, shapes)
			}
		}
		want := map[bool]int{true: shapes}
		if tu.Timed != want[c.timed] || tu.Cached != want[c.cached] || len(tu.Choices) != shapes || tu.File != file {
			t.Errorf("run %d (--gpu-tune %s): tuning %+v, want %d timed and %d cached of %d from %s", i, c.mode, tu, want[c.timed], want[c.cached], shapes, file)
		}
	}
	code, _, errs := runCLI("", "bench", "--model", stories, "--gpu", "--gpu-tune", "fast")
	if code != 2 || !strings.Contains(errs, `--gpu-tune "fast": want auto, off or redo`) {
		t.Errorf("--gpu-tune fast: exit %d, %s", code, errs)
	}
}

func TestBenchProfileErrors(t *testing.T) {
	stories := testutil.SharedFile(t, "stories260K.gguf")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"cpu", []string{"--cpu", "--profile"}, "add --gpu"},
		{"negative depth", []string{"--cpu", "--depth", "-1"}, "--depth ≥ 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runCLI("", append([]string{"bench", "--model", stories}, c.args...)...)
			if code == 0 || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr lacks %q:\n%s", code, c.want, errs)
			}
		})
	}
}

func TestSynthLayers(t *testing.T) {
	out := filepath.Join(t.TempDir(), "short.gguf")
	for _, c := range []struct {
		layers string
		code   int
	}{{"2", 0}, {"-1", 2}} {
		code, _, errs := runCLI("", "synth", "--preset", "smollm3-tiny", "--layers", c.layers, "--out", out)
		if code != c.code {
			t.Fatalf("synth --layers %s: exit %d, want %d: %s", c.layers, code, c.code, errs)
		}
	}
	code, stdout, errs := runCLI("", "inspect", out)
	if code != 0 || !strings.Contains(stdout, "2 layers") {
		t.Errorf("inspect of a 2-layer file: exit %d\n%s%s", code, stdout, errs)
	}
}
