package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws one line on stderr while a long operation runs, when
// stderr is a terminal; otherwise it stays silent, so that scripts get
// only results and errors. Safe for concurrent use.
type progressBar struct {
	w     io.Writer // nil: silent
	label string
	unit  string // what is counted: unitBytes, "objects", "pgs"
	start time.Time

	mu          sync.Mutex // guards the following
	done, total int64
	drawn       time.Time
}

// unitBytes counts bytes, drawn as sizes.
const unitBytes = "bytes"

func newProgress(label, unit string) *progressBar {
	p := &progressBar{label: label, unit: unit, start: time.Now()}
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		p.w = os.Stderr
	}
	return p
}

// update records progress; the line is redrawn at most 10 times a second.
func (p *progressBar) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = max(p.done, done), total
	if p.w == nil || time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	fmt.Fprint(p.w, "\r"+renderBar(p.label, p.done, p.total, p.unit, time.Since(p.start)))
}

// count is the progress so far.
func (p *progressBar) count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// finish draws the final state and ends the line.
func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil && !p.drawn.IsZero() {
		fmt.Fprint(p.w, "\r"+renderBar(p.label, p.done, p.total, p.unit, time.Since(p.start))+"\n")
	}
}

// renderBar is "label [#####.....]  50% 5/10 objects 3s".
func renderBar(label string, done, total int64, unit string, elapsed time.Duration) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(1, float64(done)/float64(total))
	}
	n := int(frac * width)
	bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
	count := fmt.Sprintf("%d/%d %s", done, total, unit)
	if unit == unitBytes {
		count = formatSize(done) + "/" + formatSize(total)
	}
	return fmt.Sprintf("%s [%s] %3.0f%% %s %s", label, bar, frac*100, count, elapsed.Round(time.Second))
}
