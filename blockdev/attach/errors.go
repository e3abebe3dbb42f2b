package attach

import "errors"

// Sentinel errors; classify with errors.Is.
var (
	// ErrUnsupported: not Linux.
	ErrUnsupported = errors.New("attach: kernel NBD devices need Linux")
	// ErrNotRoot: configuring /dev/nbdX needs root (CAP_SYS_ADMIN).
	ErrNotRoot = errors.New("attach: mapping an image needs root: run it with sudo")
	// ErrNoModule: the nbd kernel module is not loaded and could not be loaded.
	ErrNoModule = errors.New("attach: the kernel's nbd module is not available")
	// ErrNoDevice: every /dev/nbdX is in use.
	ErrNoDevice = errors.New("attach: no free /dev/nbdX device")
	// ErrNotMapped: the device is not connected.
	ErrNotMapped = errors.New("attach: device is not mapped")
)
