//go:build !unix

package mon

// probeDBLock is a no-op where bbolt does not use flock; the mon lock file
// still keeps two mons apart.
func probeDBLock(string) error { return nil }
