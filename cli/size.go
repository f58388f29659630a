package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag holding a memory size: a number of bytes, optionally with a unit (K, M, G, T
// and their KiB... spellings are powers of 1024; KB, MB... are powers of 1000), e.g. 6GiB or 512M.
// "auto" and 0 mean the default, which the flag's user works out.
type byteSize int64

func (b *byteSize) String() string {
	if *b == 0 {
		return "auto"
	}
	return fmtBytes(uint64(*b))
}

func (b *byteSize) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "auto" {
		return 0, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{"": 1, "B": 1,
		"K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v < 0 || v*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a memory size: give bytes with a unit, e.g. 4GiB, 512MiB or 0 for auto", s)
	}
	return int64(v * mult), nil
}

// diskCap is a flag holding a disk budget: a size as byteSize reads it, where 0 (or "off") turns the
// use of disk off and "auto" is the default the flag was declared with.
type diskCap struct {
	v, def int64
}

func (d *diskCap) String() string {
	if d.v == 0 {
		return "off"
	}
	return fmtBytes(uint64(d.v))
}

func (d *diskCap) Set(s string) error {
	switch strings.TrimSpace(s) {
	case "off":
		d.v = 0
		return nil
	case "auto":
		d.v = d.def
		return nil
	}
	v, err := parseByteSize(s)
	if err != nil {
		return fmt.Errorf("%q is not a disk size: give bytes with a unit, e.g. 2GiB or 500MB, or 0 to turn it off", s)
	}
	d.v = v
	return nil
}
