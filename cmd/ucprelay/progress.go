package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws one line of progress on a terminal, or a line every few seconds on
// anything else (a log collector).
type progressBar struct {
	w     io.Writer
	tty   bool
	last  time.Time
	start time.Time
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	b := &progressBar{w: w, tty: tty, start: time.Now()}
	if !tty {
		b.last = b.start // a log gets its first line after 5 s, not at once
	}
	return b
}

func (b *progressBar) show(done, total int64, unit, note string) {
	if !b.tty && time.Since(b.last) < 5*time.Second {
		return
	}
	b.last = time.Now()
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(min(done, total)) / float64(total)
	}
	const width = 30
	fill := int(pct / 100 * width)
	rate := float64(done) / max(time.Since(b.start).Seconds(), 1e-3)
	line := fmt.Sprintf("[%s%s] %5.1f%% %d/%d %s, %.0f/s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, done, total, unit, rate)
	if note != "" {
		line += ", " + note
	}
	if b.tty {
		fmt.Fprintf(b.w, "\r%s", line)
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, line)
}

func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}
