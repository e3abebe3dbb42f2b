package qemutest

import "errors"

// Errors Run, Load and Config.Validate return, wrapped with what was being
// done. A script that exits non-zero is not an error: that is
// Result.ExitCode.
var (
	// ErrConfig: a Config field is out of range (Config.Validate).
	ErrConfig = errors.New("qemutest: bad config")
	// ErrBuild: scripts/guest/build.sh failed or could not be found, or its
	// output is incomplete.
	ErrBuild = errors.New("qemutest: building the guest failed")
	// ErrTimeout: the guest did not power off within Config.Timeout; QEMU
	// was killed.
	ErrTimeout = errors.New("qemutest: guest timed out")
	// ErrNoExit: QEMU exited without the guest printing its exit marker
	// (a kernel panic, a crash of /init, QEMU refusing an option).
	ErrNoExit = errors.New("qemutest: guest printed no exit marker")
)
