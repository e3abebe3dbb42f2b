package qemutest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill cmd's process when the thread that
// started it exits, so a test binary that dies (a panic, go test's -timeout)
// leaves no QEMU behind. The caller keeps that thread alive with
// runtime.LockOSThread until the process has been waited for.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
