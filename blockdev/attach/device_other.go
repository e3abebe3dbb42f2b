//go:build !linux

package attach

import (
	"context"
	"os"
	"time"
)

// Params describe the export to the kernel.
type Params struct {
	Size      int64
	BlockSize int64
	Flags     uint64
	Timeout   time.Duration
}

// Check fails: kernel NBD devices need Linux.
func Check(context.Context) error { return ErrUnsupported }

// Attach fails: kernel NBD devices need Linux.
func Attach(string, *os.File, Params) (func() error, error) { return nil, ErrUnsupported }

// Detach fails: kernel NBD devices need Linux.
func Detach(string, time.Duration) error { return ErrUnsupported }

// FreeDevice fails: kernel NBD devices need Linux.
func FreeDevice() (string, error) { return "", ErrUnsupported }

// Connected is false: kernel NBD devices need Linux.
func Connected(string) bool { return false }
