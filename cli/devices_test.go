package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDevicesJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"devices", "--json"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep devicesReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, out.String())
	}
	for _, p := range []pick{rep.Auto, rep.Forced} {
		if p.Index < -1 || p.Index >= len(rep.Adapters) || p.Reason == "" {
			t.Errorf("bad pick %+v for %d adapters", p, len(rep.Adapters))
		}
	}
	if rep.Auto.Index >= 0 && rep.Adapters[rep.Auto.Index].Type == "cpu" {
		t.Errorf("auto picked a CPU-type adapter: %+v", rep.Adapters[rep.Auto.Index])
	}
	for i, a := range rep.Adapters {
		if a.Index != i || a.Name == "" {
			t.Errorf("adapter %d: %+v", i, a)
		}
	}
}

func TestDevicesTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"devices"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "auto: ") {
		t.Errorf("table does not say what auto picks:\n%s", out.String())
	}
	if code := Main([]string{"devices", "extra"}, nil, &out, &errOut); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}

func TestFmtBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 32768: "32 KiB", 134217728: "128 MiB", 2147483647: "2.0 GiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
