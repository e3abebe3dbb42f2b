package qemutest

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

// LineLogger returns a writer for Config.Log that passes the console to
// tb.Log line by line, without \r. Safe for concurrent use; a last line
// without a newline is not logged. Do not use it after the test ends.
func LineLogger(tb testing.TB) io.Writer {
	return &lineLogger{tb: tb}
}

// lineLogger is LineLogger's writer.
type lineLogger struct {
	tb  testing.TB
	mu  sync.Mutex // guards the following
	buf bytes.Buffer
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // incomplete: keep for the next Write
			return len(p), nil
		}
		l.tb.Log(strings.TrimRight(line, "\r\n"))
	}
}
