package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pyRepr writes a JSON value the way Python's str() writes it once json.loads has parsed it, which is
// how SmolLM3's template prints a tool schema ("tool | string"): dicts as {'key': value, ...} in the
// document's key order, lists as [a, b], strings in Python's repr quoting, true/false/null as
// True/False/None, integers as written and floats in Python's shortest round-trip form.
//
// Like str(), it writes a top-level string as its bare text; only strings inside lists and dicts are
// quoted.
func pyRepr(data []byte) (string, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", fmt.Errorf("invalid JSON: %w", err)
		}
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var b strings.Builder
	if err := pyValue(&b, dec); err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return "", fmt.Errorf("invalid JSON after the value: %w", err)
	}
	return b.String(), nil
}

func pyValue(b *strings.Builder, dec *json.Decoder) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return errors.New("empty JSON value")
	}
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			b.WriteByte('{')
			seen := map[string]bool{}
			for i := 0; dec.More(); i++ {
				kt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("invalid JSON: %w", err)
				}
				k := kt.(string) // the decoder only yields string keys inside an object
				if seen[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				seen[k] = true
				if i > 0 {
					b.WriteString(", ")
				}
				pyString(b, k)
				b.WriteString(": ")
				if err := pyValue(b, dec); err != nil {
					return err
				}
			}
			b.WriteByte('}')
		case '[':
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteString(", ")
				}
				if err := pyValue(b, dec); err != nil {
					return err
				}
			}
			b.WriteByte(']')
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return fmt.Errorf("invalid JSON: %w", err)
		}
	case string:
		pyString(b, t)
	case json.Number:
		s, err := pyNumber(string(t))
		if err != nil {
			return err
		}
		b.WriteString(s)
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case nil:
		b.WriteString("None")
	}
	return nil
}

// pyNumber converts a JSON number literal as json.loads does: an int when it has no fraction and no
// exponent, otherwise a float, and writes it as Python's repr does.
func pyNumber(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") {
		if strings.Trim(lit, "-0") == "" {
			return "0", nil // -0 is the int 0
		}
		return lit, nil // Python ints have arbitrary precision: the digits as written
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return "", fmt.Errorf("invalid number %q: %w", lit, err)
	}
	return pyFloat(f), nil
}

// pyFloat is Python's repr of a float: the shortest digits that round-trip, in positional notation
// with at least one decimal ("1.0", "0.0001") when the decimal exponent is in [-4, 16), else in
// exponent notation with a signed exponent of at least two digits ("1e-05", "1.5e+16").
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // "-d.ddde±XX"
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	point := exp + 1 // digits before the decimal point
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		return sign + digits[:point] + "." + digits[point:]
	}
}

// pyString is Python's repr of a str: single quotes unless the text has a single quote and no double
// quote; backslash escapes for the quote, the backslash, \t \n \r; \xhh for other control characters;
// \xhh, \uhhhh or \Uhhhhhhhh for characters that are not printable; everything else as is.
func pyString(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case r < utf8.RuneSelf || unicode.IsPrint(r):
			// Go's IsPrint and Python's isprintable agree: letters, marks, numbers, punctuation,
			// symbols and the ASCII space are printable; other separators, format, private-use,
			// surrogate and unassigned code points are not.
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
}
