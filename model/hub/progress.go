package hub

import (
	"fmt"
	"io"
	"smolchat/internal/term"
	"strings"
	"time"
)

// How often progress is shown: a terminal bar is redrawn often, a log (stderr redirected to a file or a
// pipe) gets a line now and then so it stays readable.
const (
	drawEvery   = 200 * time.Millisecond
	lineEvery   = 5 * time.Second
	speedWindow = 10 * time.Second // speed is measured over the last few seconds, so it follows changes
	barWidth    = 24
	nameWidth   = 32
)

// progress shows a download's progress on w: a bar redrawn in place when w is a terminal, plain lines
// otherwise. A nil w shows nothing.
type progress struct {
	w    io.Writer
	tty  bool
	name string
	now  func() time.Time

	total, done int64
	active      bool      // between Start and Finish/Abort
	began       time.Time // first Start
	moved       int64     // bytes received in this run (not counting a resumed prefix)
	samples     []sample  // recent (time, done) points for the speed
	lastShow    time.Time
	shownLen    int // width of the bar on screen (tty), to blank it out
}

type sample struct {
	t    time.Time
	done int64
}

func newProgress(w io.Writer, name string, now func() time.Time) *progress {
	return &progress{w: w, tty: term.IsTerminal(w), name: name, now: now}
}

// Start begins (or, after a retry, continues) showing a transfer of total bytes of which done are
// already here.
func (p *progress) Start(total, done int64) {
	if p.w == nil {
		return
	}
	now := p.now()
	if p.began.IsZero() {
		p.began = now
		if done > 0 {
			p.line(fmt.Sprintf("resuming %s at %s of %s", p.name, FormatSize(done), FormatSize(total)))
		} else {
			p.line(fmt.Sprintf("downloading %s (%s)", p.name, FormatSize(total)))
		}
	}
	p.total, p.done, p.active = total, done, true
	p.samples = []sample{{now, done}}
	p.lastShow = now
	if p.tty {
		p.draw(now)
	}
}

// Set records that done bytes are here.
func (p *progress) Set(done int64) {
	if p.w == nil || !p.active {
		return
	}
	now := p.now()
	if done < p.done {
		p.samples = p.samples[:0]
	} else {
		p.moved += done - p.done
	}
	p.done = done
	if len(p.samples) == 0 || now.Sub(p.samples[len(p.samples)-1].t) >= drawEvery {
		p.samples = append(p.samples, sample{now, done})
		for len(p.samples) > 2 && now.Sub(p.samples[0].t) > speedWindow {
			p.samples = p.samples[1:]
		}
	}
	switch {
	case p.tty && now.Sub(p.lastShow) >= drawEvery:
		p.draw(now)
	case !p.tty && now.Sub(p.lastShow) >= lineEvery:
		p.lastShow = now
		fmt.Fprintln(p.w, p.status(now))
	}
}

// Note prints a message on a line of its own, keeping the bar below it.
func (p *progress) Note(msg string) {
	if p.w == nil {
		return
	}
	p.line(msg)
	if p.tty && p.active {
		p.draw(p.now())
	}
}

// Finish shows the completed transfer and its average speed.
func (p *progress) Finish() {
	if p.w == nil {
		return
	}
	now := p.now()
	if p.active && p.tty {
		p.draw(now)
		fmt.Fprintln(p.w)
		p.shownLen = 0
	}
	p.active = false
	if p.began.IsZero() {
		return // nothing was transferred: the file was complete already
	}
	took := now.Sub(p.began)
	avg := ""
	if s := took.Seconds(); s > 0 {
		avg = fmt.Sprintf(", %s/s", FormatSize(int64(float64(p.moved)/s)))
	}
	fmt.Fprintf(p.w, "%s: done, %s in %s%s\n", p.name, FormatSize(p.total), formatDuration(took), avg)
}

// Abort leaves the bar as it is and moves below it.
func (p *progress) Abort() {
	if p.w == nil {
		return
	}
	if p.active && p.tty && p.shownLen > 0 {
		fmt.Fprintln(p.w)
		p.shownLen = 0
	}
	p.active = false
}

// line prints msg on its own line, first clearing the bar from a terminal.
func (p *progress) line(msg string) {
	if p.tty && p.shownLen > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.shownLen))
		p.shownLen = 0
	}
	fmt.Fprintln(p.w, msg)
}

// draw redraws the bar in place.
func (p *progress) draw(now time.Time) {
	p.lastShow = now
	s := p.status(now)
	pad := ""
	if n := p.shownLen - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", s, pad)
	p.shownLen = len(s)
}

// status is one line: name, percentage, bar (terminal only), size, speed and ETA.
func (p *progress) status(now time.Time) string {
	var b strings.Builder
	b.WriteString(shorten(p.name, nameWidth))
	frac := 0.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	fmt.Fprintf(&b, " %5.1f%%", 100*frac)
	if p.tty {
		fill := int(frac * barWidth)
		fill = min(max(fill, 0), barWidth)
		b.WriteString(" [" + strings.Repeat("=", fill) + strings.Repeat(" ", barWidth-fill) + "]")
	}
	fmt.Fprintf(&b, " %s / %s", FormatSize(p.done), FormatSize(p.total))
	rate := p.rate(now)
	eta := "--:--"
	if rate > 0 {
		eta = formatDuration(time.Duration(float64(p.total-p.done) / rate * float64(time.Second)))
	}
	fmt.Fprintf(&b, " %s/s ETA %s", FormatSize(int64(rate)), eta)
	return b.String()
}

// rate is bytes per second over the recent samples.
func (p *progress) rate(now time.Time) float64 {
	if len(p.samples) == 0 {
		return 0
	}
	first := p.samples[0]
	dt := now.Sub(first.t).Seconds()
	if dt < 0.5 {
		return 0 // too little time to say
	}
	return float64(p.done-first.done) / dt
}

// shorten keeps the end of a long name, where the quantization usually is.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// FormatSize writes a byte count with a binary unit and three significant digits: "812 B", "1.92 GiB".
func FormatSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	u := -1
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f %s", v, units[u])
	case v < 100:
		return fmt.Sprintf("%.1f %s", v, units[u])
	}
	return fmt.Sprintf("%.0f %s", v, units[u])
}

// formatDuration is m:ss, or h:mm:ss from an hour on.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
