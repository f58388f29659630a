package cli

import "testing"

func TestParseByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"auto", 0, true},
		{"0", 0, true},
		{"1024", 1024, true},
		{"4GiB", 4 << 30, true},
		{"512M", 512 << 20, true},
		{"1.5G", 3 << 29, true},
		{"2GB", 2e9, true},
		{"10 MiB", 10 << 20, true},
		{"", 0, false},
		{"-1G", 0, false},
		{"4 parsecs", 0, false},
		{"G", 0, false},
	} {
		got, err := parseByteSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestDiskCap: --kv-disk-max reads sizes, 0 and "off" turn the disk off, "auto" is the default.
func TestDiskCap(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"off", 0, true},
		{"auto", 7, true},
		{"500MB", 500e6, true},
		{"2GiB", 2 << 30, true},
		{"lots", 7, false},
		{"-1G", 7, false},
	} {
		d := diskCap{v: 7, def: 7}
		err := d.Set(c.in)
		if (err == nil) != c.ok || d.v != c.want {
			t.Errorf("Set(%q) = %d, %v; want %d (ok %v)", c.in, d.v, err, c.want, c.ok)
		}
	}
	if s := (&diskCap{}).String(); s != "off" {
		t.Errorf("0 prints as %q, want off", s)
	}
}
