package shaders

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

func TestAssemble(t *testing.T) {
	fsys := fstest.MapFS{
		"main.wgsl": {Data: []byte("//#include \"a.wgsl\"\n//#include \"a.wgsl\"\nconst N = {{N}}u;\n//#if FAST\nfast\n//#if DEEP\ndeep\n//#else\nshallow\n//#endif\n//#else\nslow\n//#endif\nend {{N}}\n")},
		"a.wgsl":    {Data: []byte("// a\n//#include \"b.wgsl\"\n")},
		"b.wgsl":    {Data: []byte("b {{N}}\n")},
	}
	tests := []struct {
		defs Defines
		want string
	}{
		{Defines{"N": "4", "FAST": "1", "DEEP": "1"}, "// a\nb 4\nconst N = 4u;\nfast\ndeep\nend 4\n"},
		{Defines{"N": "4", "FAST": "1"}, "// a\nb 4\nconst N = 4u;\nfast\nshallow\nend 4\n"},
		{Defines{"N": "8", "FAST": "0", "DEEP": "1"}, "// a\nb 8\nconst N = 8u;\nslow\nend 8\n"},
		{Defines{"N": "8", "FAST": "false"}, "// a\nb 8\nconst N = 8u;\nslow\nend 8\n"},
	}
	for _, tt := range tests {
		got, err := assemble(fsys, "main.wgsl", tt.defs)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("defs %v:\n got %q\nwant %q", tt.defs, got, tt.want)
		}
	}
}

func TestAssembleErrors(t *testing.T) {
	for name, src := range map[string]string{
		"missing define":    "x {{NOPE}}\n",
		"unterminated":      "x {{N\n",
		"else without if":   "//#else\n",
		"endif without if":  "//#endif\n",
		"unclosed if":       "//#if N\nx\n",
		"double else":       "//#if N\n//#else\n//#else\n//#endif\n",
		"missing include":   "//#include \"nope.wgsl\"\n",
		"placeholder in if": "//#if N\n{{M}}\n//#endif\n",
	} {
		fsys := fstest.MapFS{"s.wgsl": {Data: []byte(src)}}
		if _, err := assemble(fsys, "s.wgsl", Defines{"N": "1"}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestEmbeddedKernels assembles every kernel variant the gpu package builds and checks that no
// directive or placeholder survives; compiling them is the gpu package's tests' job.
func TestEmbeddedKernels(t *testing.T) {
	var variants []struct {
		file string
		defs Defines
	}
	add := func(file string, defs Defines) {
		variants = append(variants, struct {
			file string
			defs Defines
		}{file, defs})
	}
	for _, wt := range []string{"f32", "f16", "q8_0", "q4_k", "q6_k"} {
		for _, fused := range []string{"", "ACCUM", "GLU", "ROPE"} {
			flags := Defines{"ACCUM": "", "GLU": "", "ROPE": ""}
			if fused != "" {
				flags[fused] = "1"
			}
			for _, sg := range []string{"1", ""} {
				for _, nt := range []int{1, 4} { // tokens per workgroup: decode, a few at once
					mv := Defines{"WTYPE": wt, "WG": "128", "ROWS": "4", "NT": fmt.Sprint(nt), "FEW": map[bool]string{true: "1"}[nt > 1],
						"SUBGROUPS": sg, "ACCUM": flags["ACCUM"], "GLU": flags["GLU"], "ROPE": flags["ROPE"]}
					file := "matvec.wgsl"
					if wt == "q4_k" || wt == "q6_k" {
						file = "matvec_" + wt + ".wgsl" // the K-quants' own kernels
						delete(mv, "WTYPE")
						mv["WG"] = "64"
					}
					add(file, mv)
				}
			}
			for _, f16 := range []string{"1", ""} {
				mm := Defines{"TM": "64", "TN": "64", "RM": "8", "RN": "8", "F16": f16, "TILE": "dq4", "WTYPE": wt,
					"ACCUM": flags["ACCUM"], "GLU": flags["GLU"], "ROPE": flags["ROPE"]}
				if wt == "q4_k" || wt == "q6_k" {
					mm["TILE"] = wt // the K-quants' own weight tiles
					delete(mm, "WTYPE")
				}
				add("matmul.wgsl", mm)
			}
		}
		add("embed.wgsl", Defines{"WTYPE": wt})
	}
	for _, f16 := range []string{"1", ""} {
		add("attention.wgsl", Defines{"HD": "128", "GQ": "4", "KV_F16": f16, "BL": "256", "KV_ACCESS": "read"})
		add("attention_decode.wgsl", Defines{"HD": "128", "GW": "4", "KV_F16": f16, "BL": "256", "KV_ACCESS": "read_write"})
		add("attention_combine.wgsl", Defines{"HD": "128", "KV_F16": f16, "BL": "256", "KV_ACCESS": "read"})
		add("kv_store.wgsl", Defines{"KV_F16": f16})
	}
	for _, f := range []string{"rmsnorm.wgsl", "argmax.wgsl", "topk.wgsl"} {
		add(f, nil)
	}
	for _, v := range variants {
		src, err := Source(v.file, v.defs)
		if err != nil {
			t.Errorf("%s %v: %v", v.file, v.defs, err)
			continue
		}
		if strings.Contains(src, "{{") || strings.Contains(src, "//#") {
			t.Errorf("%s %v: a directive or placeholder survived", v.file, v.defs)
		}
		if !strings.Contains(src, "@compute") {
			t.Errorf("%s: no entry point", v.file)
		}
	}
	// Every file starts with a header comment naming it.
	for _, name := range Names() {
		raw, _ := Raw(name)
		if !strings.HasPrefix(raw, "// "+name+":") {
			t.Errorf("%s: header comment should start with %q", name, "// "+name+":")
		}
	}
}
