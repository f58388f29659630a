package constrain

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGBNF(t *testing.T) {
	tests := []struct {
		name, grammar string
		good, bad     []string
	}{
		{"literal", `root ::= "yes" | "no"`, []string{"yes", "no"}, []string{"y", "yesno", ""}},
		{"escapes", `root ::= "a\n\t\"\\" "\x41\u00e9\U0001F600"`, []string{"a\n\t\"\\Aé😀"}, []string{"a"}},
		{"classes", `root ::= [a-c0-9_] [^a-z]`, []string{"a0", "_Z", "9é"}, []string{"d0", "aa", "a"}},
		{"unicode range", `root ::= [α-ω]+`, []string{"αβγ", "ω"}, []string{"a", "Α", ""}},
		{"any", `root ::= . .`, []string{"ab", "é😀", "\n\x00"}, []string{"a", "abc", "\xff\xfe"}},
		{"repetition", `root ::= "a"{2,3} "b"{2} "c"{1,} "d"?`, []string{"aabbc", "aaabbcccd"}, []string{"abbc", "aaaabbc", "aabbd"}},
		{"star and plus", `root ::= ("ab")* "c"+`, []string{"c", "ababccc"}, []string{"abab", "abc c"}},
		{"rules and comments", "# a list\nroot ::= item (\",\" item)*   # items\nitem ::= [0-9]+\n  | \"x\"\n", []string{"1,x,23", "x"}, []string{"1,", ",1"}},
		{"recursion", `root ::= "(" root ")" | ""`, []string{"", "()", "((()))"}, []string{"(()", ")"}},
		{"multi-line rule", "root ::= \"a\"\n    \"b\"\nother ::= \"c\"", []string{"ab"}, []string{"a", "abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := CompileGBNF(tt.grammar)
			if err != nil {
				t.Fatal(err)
			}
			checkLanguage(t, g, tt.good, tt.bad)
		})
	}
}

func TestGBNFErrors(t *testing.T) {
	for _, g := range []string{``, `item ::= "a"`, `root ::= "a`, `root ::= [a-`, `root ::= (a`, `root ::= missing`,
		`root ::= root "a"`, `root ::= "a"{3,1}`, `root ::= "a"{999}`, `root ::= "\q"`, `root := "a"`, `root ::= "a" root ::= "b"`,
		`root ::= [z-a]`, `root ::= ("a"?)*`} {
		_, err := CompileGBNF(g)
		var ge *GBNFError
		if err == nil || !errors.As(err, &ge) && !isBuildError(err) {
			t.Errorf("%q: error %v, want a GBNFError or a build error", g, err)
		}
	}
}

// TestUTF8Ranges checks the byte classes of code point ranges against random code points in and
// around each range.
func TestUTF8Ranges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range [][2]rune{{0, 0x7f}, {0x41, 0x5a}, {0x80, 0x7ff}, {0x3b1, 0x3c9}, {0x7f0, 0x810}, {0x800, 0xffff},
		{0xd000, 0xe100}, {0x1f600, 0x1f64f}, {0xfff0, 0x10010}, {0, utf8.MaxRune}, {0x10000, 0x10ffff}} {
		b := newBuilder()
		b.define(b.declare("root"), utf8Ranges(r[0], r[1])...)
		g, err := b.build()
		if err != nil {
			t.Fatal(err)
		}
		for range 3000 {
			c := r[0] - 64 + rng.Int32N(r[1]-r[0]+129)
			if c < 0 || c > utf8.MaxRune {
				continue
			}
			want := c >= r[0] && c <= r[1] && utf8.ValidRune(c)
			if got := matches(g, string(utf8.AppendRune(nil, c))); got != want && utf8.ValidRune(c) {
				t.Fatalf("range %x-%x: U+%04X matched %v", r[0], r[1], c, got)
			}
		}
	}
}

// TestGBNFAmbiguity: a grammar whose paths multiply is refused (at build) or stops matching, in
// bounded time, rather than expanding 2^n stacks.
func TestGBNFAmbiguity(t *testing.T) {
	start := "root ::= " + strings.Repeat(`("" | "")`, 40) + ` "a"`
	if _, err := CompileGBNF(start); err == nil || !isBuildError(err) {
		t.Errorf("2^40 empty paths at the start: %v", err)
	}
	later := `root ::= "x" ` + strings.Repeat(`("" | "")`, 40) + ` "a"`
	g, err := CompileGBNF(later)
	if err != nil {
		t.Fatal(err)
	}
	if matches(g, "xa") {
		t.Error("matched through 2^40 paths")
	}
}
