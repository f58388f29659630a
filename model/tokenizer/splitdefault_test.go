package tokenizer

import (
	"slices"
	"testing"
)

// TestDefaultPreTokenizer checks llama.cpp's "default" split, which an absent tokenizer.ggml.pre also
// means, on Llama 3's vocabulary with the key rewritten. The ids are llama.cpp's (v0.5.0 through
// node-llama-cpp 3.22.1, ref.mjs tokenize on a copy of ggml-vocab-llama-bpe.gguf with pre "default",
// and with no pre key: both gave the same ids). GPT-2's split, which this package used before, gets 7
// of the 10 wrong.
func TestDefaultPreTokenizer(t *testing.T) {
	v := sharedVocab(t, "ggml-vocab-llama-bpe.gguf")
	cases := []struct {
		text string
		want []int32
	}{
		{"Hello, world! don't 12345 x+y=z", []int32{9906, 11, 1917, 0, 1541, 6, 83, 220, 4513, 1774, 865, 10, 88, 28, 89}},
		{"«Привет» — мир… ١٢٣٤٥ ٣", []int32{24633, 54745, 28089, 8341, 13289, 220, 2345, 115388, 1981, 220, 109610, 110546, 117413, 124079, 124043, 220, 117413}},
		{"$100+$200<=>^~|`x` @user #tag", []int32{3, 1041, 32819, 1049, 27, 2228, 61, 93, 91, 63, 87, 63, 220, 31, 882, 220, 2, 4681}},
		{"a  \n\n b\t\tc   ", []int32{64, 19124, 293, 197, 197, 66, 262}},
		{"x1234567y 1,000,000.50", []int32{87, 4513, 10961, 22, 88, 220, 16, 11, 931, 11, 931, 13, 1135}},
		{"你好，世界！123abc", []int32{57668, 53901, 3922, 102616, 6447, 4513, 13997}},
		{"'s 's'S 'll ''' --- ...!?", []int32{6, 82, 220, 6, 82, 6, 50, 220, 6, 657, 220, 19317, 220, 4521, 220, 1131, 58490}},
		{"😀👍🏽 é Ⅻ ½ ²³", []int32{76460, 222, 9468, 239, 235, 9468, 237, 121, 384, 54939, 220, 71567, 104, 220, 27154, 220, 30556, 44301}},
		{"   leading and trailing   ", []int32{256, 6522, 323, 28848, 262}},
		{"price:$5.99;qty=3/4 (approx.) [ok] {x}", []int32{6692, 22444, 20, 13, 1484, 26, 30403, 28, 18, 14, 19, 220, 7, 49153, 6266, 220, 58, 564, 60, 220, 90, 87, 92}},
	}
	for _, pre := range []string{"default", ""} {
		v.Pre = pre
		tok := mustNew(t, v)
		if tok.AddsBOS() {
			t.Errorf("pre %q adds BOS; llama.cpp does not", pre)
		}
		for _, c := range cases {
			if got := tok.Encode(c.text, EncodeOptions{}); !slices.Equal(got, c.want) {
				t.Errorf("pre %q: Encode(%q)\n got %v\nwant %v", pre, c.text, got, c.want)
			}
		}
	}
}
