package qemutest

import (
	"fmt"
	"io"
	"time"
)

// Config is one guest run.
type Config struct {
	// Script is the job: a busybox sh script that /init runs from /tmp with
	// stdin from /dev/null and stdout and stderr on the console (so in
	// Result.Console). Its exit status is Result.ExitCode. Required.
	//
	// The guest has every module of the build loaded (virtio, 9p, nbd,
	// loop, ext4, xfs, sunrpc, lockd, nfs, nfsv3), eth0 up as 10.0.2.15/24
	// with no default route (the host's loopback is 10.0.2.2), fio on PATH
	// (from the fio disk, mounted read-only at /opt/fio), and
	// nbd-client, mkfs.ext4, e2fsck, mkfs.xfs, xfs_repair, mount.nfs,
	// util-linux's mount and blkid and busybox for the rest.
	Script string

	// Share is a host folder mounted read-write at /host in the guest
	// (virtio-9p, security_model=none: files the guest creates belong to
	// the user running the test). Empty: no share.
	Share string

	// ExtraDisk is a raw image file attached read-write as a virtio disk
	// with serial "extra": /dev/vda, also /dev/disk/by-id/virtio-extra.
	// Empty: none.
	ExtraDisk string

	// ExtraDiskLog, with ExtraDisk, logs every write, discard and flush
	// the guest's disk completes to this file, in the format of Linux's
	// dm-log-writes (QEMU's blklogwrites driver; the file is created or
	// started over). Package writelog reads it and replays crash states. Empty:
	// no log.
	ExtraDiskLog string

	// Disks are more disks, attached after ExtraDisk in their order: with
	// an ExtraDisk the first is /dev/vdb, without one /dev/vda. Each is
	// also /dev/disk/by-id/virtio-SERIAL.
	Disks []Disk

	// MemMiB is the guest's memory. Zero means 1024.
	MemMiB int

	// CPUs is the number of virtual CPUs. Zero means 1 (under TCG each one
	// costs a host core).
	CPUs int

	// Timeout bounds the whole run, boot included; QEMU is killed when it
	// passes. Zero means 3 minutes. A boot takes about 5-10 s under TCG.
	Timeout time.Duration

	// Log, if set, receives the console as it comes (with \r). Use
	// LineLogger(tb) to stream it into the test log.
	Log io.Writer
}

// Disk is a raw image file attached read-write as a virtio disk.
type Disk struct {
	// Path is the image file. Required.
	Path string
	// Log, if set, logs every write, discard and flush the guest completes
	// on this disk to this file, as ExtraDiskLog does for ExtraDisk.
	Log string
	// Serial names the disk in /dev/disk/by-id/virtio-SERIAL: at most 20
	// letters, digits or '-', unique, and not "extra", "fio" or
	// "tsumiki-fio". It is also the drive's id. Required.
	Serial string
}

const (
	defaultMemMiB  = 1024
	defaultCPUs    = 1
	defaultTimeout = 3 * time.Minute
)

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MemMiB == 0 {
		c.MemMiB = defaultMemMiB
	}
	if c.CPUs == 0 {
		c.CPUs = defaultCPUs
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

// Validate returns an error wrapping ErrConfig for the first broken rule.
func (c Config) Validate() error {
	switch {
	case c.Script == "":
		return fmt.Errorf("%w: Script is empty", ErrConfig)
	case c.MemMiB < 0 || (c.MemMiB > 0 && c.MemMiB < 128):
		return fmt.Errorf("%w: MemMiB %d: want 0 (default) or at least 128", ErrConfig, c.MemMiB)
	case c.CPUs < 0 || c.CPUs > 16:
		return fmt.Errorf("%w: CPUs %d: want 0 (default) to 16", ErrConfig, c.CPUs)
	case c.Timeout < 0:
		return fmt.Errorf("%w: Timeout %s is negative", ErrConfig, c.Timeout)
	case c.ExtraDiskLog != "" && c.ExtraDisk == "":
		return fmt.Errorf("%w: ExtraDiskLog without ExtraDisk", ErrConfig)
	}
	seen := map[string]bool{"extra": true, "fio": true, "tsumiki-fio": true} // taken by ExtraDisk and the fio disk
	for i, d := range c.Disks {
		switch {
		case d.Path == "":
			return fmt.Errorf("%w: Disks[%d] has no Path", ErrConfig, i)
		case !validSerial(d.Serial):
			return fmt.Errorf("%w: Disks[%d]: serial %q: want 1-20 letters, digits or '-'", ErrConfig, i, d.Serial)
		case seen[d.Serial]:
			return fmt.Errorf("%w: Disks[%d]: serial %q is taken", ErrConfig, i, d.Serial)
		}
		seen[d.Serial] = true
	}
	return nil
}

// disks returns every disk to attach, in order: ExtraDisk (serial
// "extra"), then Disks.
func (c Config) disks() []Disk {
	if c.ExtraDisk == "" {
		return c.Disks
	}
	return append([]Disk{{Path: c.ExtraDisk, Log: c.ExtraDiskLog, Serial: "extra"}}, c.Disks...)
}

// validSerial reports whether s can be a virtio-blk serial that names a
// file in /dev/disk/by-id and needs no escaping in QEMU's options.
func validSerial(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
