package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"smolchat/internal/term"
)

// loadProgress shows model loading (mapping the file, uploading weights to the GPU) on w: a bar redrawn
// in place on a terminal, a line per quarter elsewhere.
func loadProgress(w io.Writer) func(frac float64, msg string) {
	tty := term.IsTerminal(w)
	var mu sync.Mutex
	lastMsg, lastStep := "", -1
	return func(frac float64, msg string) {
		mu.Lock()
		defer mu.Unlock()
		frac = min(max(frac, 0), 1)
		if tty {
			const width = 30
			n := int(frac * width)
			fmt.Fprintf(w, "\r\x1b[K[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, msg)
			if frac >= 1 {
				fmt.Fprintln(w)
			}
			return
		}
		step := int(frac * 4)
		if msg != lastMsg || step != lastStep {
			fmt.Fprintf(w, "loading: %3.0f%% %s\n", frac*100, msg)
			lastMsg, lastStep = msg, step
		}
	}
}
