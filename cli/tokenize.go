package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"smolchat/model/gguf"
	"smolchat/model/tokenizer"
)

func init() {
	var opts struct {
		model   string
		special bool
		noBOS   bool
	}
	register(&Command{
		Name:    "tokenize",
		Summary: "print the token ids of a text as a JSON array",
		Usage:   "--model FILE [--special] [--no-bos] TEXT   (TEXT \"-\" reads standard input)",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&opts.model, "model", "", "GGUF `file` whose tokenizer to use")
			fs.BoolVar(&opts.special, "special", false, "match special tokens such as <|im_start|> written in the text")
			fs.BoolVar(&opts.noBOS, "no-bos", false, "do not add BOS or EOS even if the model asks for them")
		},
		Run: func(env *Env, args []string) error {
			if opts.model == "" {
				return usageErr("--model FILE is required")
			}
			if len(args) != 1 {
				return usageErr("want exactly one TEXT argument, got %d (quote the text)", len(args))
			}
			text := args[0]
			if text == "-" {
				b, err := io.ReadAll(env.Stdin)
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
				text = string(b)
			}
			f, err := gguf.Open(opts.model)
			if err != nil {
				return err
			}
			defer f.Close()
			tok, err := tokenizer.FromGGUF(f)
			if err != nil {
				return err
			}
			ids := tok.Encode(text, tokenizer.EncodeOptions{
				AddBOS:       tok.AddsBOS() && !opts.noBOS,
				AddEOS:       tok.AddsEOS() && !opts.noBOS,
				ParseSpecial: opts.special,
			})
			if ids == nil {
				ids = []int32{}
			}
			out, err := json.Marshal(ids)
			if err != nil {
				return fmt.Errorf("encoding ids: %w", err)
			}
			_, err = fmt.Fprintf(env.Stdout, "%s\n", out)
			return err
		},
	})
}
