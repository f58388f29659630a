// Package term tells whether output goes to a terminal, so progress can be redrawn in place there and
// printed as occasional lines elsewhere (logs, pipes, CI).
package term

import (
	"io"
	"os"
)

// IsTerminal reports whether w is a character device such as a console (os.ModeCharDevice is set for
// terminals on Unix and for consoles on Windows) and TERM does not ask for a dumb one.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
