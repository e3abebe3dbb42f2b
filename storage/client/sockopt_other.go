//go:build !linux

package client

import (
	"syscall"
	"time"
)

// setUserTimeout: only Linux has TCP_USER_TIMEOUT; elsewhere a silent OSD
// is given up by the client's attempt timeout and keepalives.
func setUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
