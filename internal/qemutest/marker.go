package qemutest

import (
	"strconv"
	"strings"
)

// exitMarker starts the line /init prints after the job:
// "TSUMIKI-GUEST-EXIT <nonce> <status>". The nonce is new for every run, so
// a job that prints marker-like text cannot fake its own exit status.
const exitMarker = "TSUMIKI-GUEST-EXIT"

// cleanConsole removes the carriage returns of the serial console.
func cleanConsole(raw string) string {
	return strings.ReplaceAll(raw, "\r", "")
}

// parseExit finds the exit marker with nonce in console (already cleaned)
// and returns the status it carries. The last such marker wins. The marker
// may be preceded on its line by other output (a kernel message without a
// newline); it must be followed by the status and the end of the line.
func parseExit(console, nonce string) (status int, ok bool) {
	prefix := exitMarker + " " + nonce + " "
	for line := range strings.Lines(console) {
		i := strings.LastIndex(line, prefix)
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(line[i+len(prefix):]))
		if err != nil || n < 0 || n > 255 {
			continue
		}
		status, ok = n, true
	}
	return status, ok
}

// tail returns the last n lines of s, for error messages.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
