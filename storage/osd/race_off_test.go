//go:build !race

package osd

// raceEnabled: see race_on_test.go.
const raceEnabled = false
