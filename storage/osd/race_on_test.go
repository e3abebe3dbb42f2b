//go:build race

package osd

// raceEnabled: the test binary runs under the race detector (make race),
// where the single-goroutine simulation cuts its schedules: chaos-short
// runs them all without it.
const raceEnabled = true
