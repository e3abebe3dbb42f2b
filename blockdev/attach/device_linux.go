package attach

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel NBD ioctls (include/uapi/linux/nbd.h): _IO(0xab, n).
const (
	nbdSetSock       = 0xab00
	nbdSetBlksize    = 0xab01
	nbdDoIt          = 0xab03
	nbdClearSock     = 0xab04
	nbdClearQue      = 0xab05
	nbdSetSizeBlocks = 0xab07
	nbdDisconnect    = 0xab08
	nbdSetTimeout    = 0xab09
	nbdSetFlags      = 0xab0a
)

const (
	sysBlock        = "/sys/block"
	defaultModprobe = "modprobe"
)

// Check reports why this host cannot map devices: ErrNotRoot, or
// ErrNoModule after trying `modprobe nbd`.
func Check(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if haveDevices() {
		return nil
	}
	out, err := exec.CommandContext(ctx, defaultModprobe, "nbd").CombinedOutput()
	if err == nil && waitDevices(2*time.Second) {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	if err != nil && msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("%w: /sys/block/nbd0 is missing and `modprobe nbd` failed (%s); "+
		"load the module (Debian: it ships with linux-image-*; containers need it loaded on the host)", ErrNoModule, msg)
}

func haveDevices() bool {
	_, err := os.Stat(filepath.Join(sysBlock, "nbd0"))
	return err == nil
}

func waitDevices(d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if haveDevices() {
			return true
		}
	}
	return false
}

// Devices lists /dev/nbdX names the kernel offers, in numeric order.
func Devices() ([]string, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "nbd"); ok {
			if i, err := strconv.Atoi(n); err == nil {
				nums = append(nums, i)
			}
		}
	}
	sort.Ints(nums)
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = fmt.Sprintf("/dev/nbd%d", n)
	}
	return out, nil
}

// Connected reports whether dev has a connection (the kernel shows the
// serving process in /sys/block/nbdX/pid).
func Connected(dev string) bool {
	_, err := os.Stat(filepath.Join(sysBlock, filepath.Base(dev), "pid"))
	return err == nil
}

// sizeOf returns dev's capacity in bytes as the kernel shows it (-1 if
// unreadable).
func sizeOf(dev string) int64 {
	b, err := os.ReadFile(filepath.Join(sysBlock, filepath.Base(dev), "size"))
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n * 512 // sysfs counts 512-byte sectors whatever the block size
}

// FreeDevice returns the first /dev/nbdX without a connection.
func FreeDevice() (string, error) {
	devs, err := Devices()
	if err != nil {
		return "", err
	}
	for _, d := range devs {
		if !Connected(d) {
			return d, nil
		}
	}
	return "", ErrNoDevice
}

// Params describe the export to the kernel.
type Params struct {
	Size      int64         // bytes; a multiple of BlockSize
	BlockSize int64         // 512..4096, a power of two
	Flags     uint64        // Flag* bits
	Timeout   time.Duration // per-request timeout; 0: kernel default (none)
}

// Attach connects sock (the kernel's end of a socket pair whose other end
// the caller serves in NBD transmission phase) to dev. It returns once the
// device is set up; wait blocks until the device is disconnected and
// returns why. The caller must keep serving until wait returns.
func Attach(dev string, sock *os.File, p Params) (wait func() error, err error) {
	if p.BlockSize == 0 {
		p.BlockSize = 4096
	}
	if p.Size <= 0 || p.Size%p.BlockSize != 0 {
		return nil, fmt.Errorf("attach: size %d is not a positive multiple of the block size %d", p.Size, p.BlockSize)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("attach: open %s: %w", dev, err)
	}
	fd := int(f.Fd())
	steps := []struct {
		name string
		req  uint
		arg  uintptr
	}{
		{"NBD_CLEAR_SOCK", nbdClearSock, 0},
		{"NBD_SET_BLKSIZE", nbdSetBlksize, uintptr(p.BlockSize)},
		{"NBD_SET_SIZE_BLOCKS", nbdSetSizeBlocks, uintptr(p.Size / p.BlockSize)},
		{"NBD_SET_TIMEOUT", nbdSetTimeout, uintptr(p.Timeout / time.Second)},
		{"NBD_SET_FLAGS", nbdSetFlags, uintptr(p.Flags)},
		{"NBD_SET_SOCK", nbdSetSock, sock.Fd()},
	}
	for _, s := range steps {
		if err := ioctl(fd, s.req, s.arg); err != nil {
			f.Close()
			return nil, fmt.Errorf("attach: %s on %s: %w", s.name, dev, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		// NBD_DO_IT sleeps in the kernel for the device's lifetime, on a
		// thread of its own: never unlocked, the thread ends with this
		// goroutine, and its signal mask with it.
		runtime.LockOSThread()
		// A signal delivered to this thread interrupts NBD_DO_IT, and the
		// kernel then shuts the device's socket down: every I/O after
		// fails (and the restarted call answers EBUSY). Any signal sent
		// to the process may land here (a child's SIGCHLD, a SIGTERM
		// meant for a clean stop), so this thread takes none. SIGSTOP
		// cannot be blocked: stopping the process drops the device.
		blockSignals()
		err := ioctl(fd, nbdDoIt, 0)
		_ = ioctl(fd, nbdClearQue, 0)
		_ = ioctl(fd, nbdClearSock, 0)
		f.Close()
		done <- err
	}()
	// The device is live once the kernel shows our pid and then its size:
	// it creates the pid file first and sets the capacity after, so a
	// caller that opened the device in between saw 0 bytes (an ackcheck
	// in TestClusterPowerLossFlushPoints did, right after `tsumiki map`).
	for end := time.Now().Add(5 * time.Second); !(Connected(dev) && sizeOf(dev) == p.Size) && time.Now().Before(end); {
		select {
		case err := <-done:
			return nil, fmt.Errorf("attach: NBD_DO_IT on %s: %w", dev, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return func() error {
		err := <-done
		if err != nil && err != unix.EBUSY {
			return err
		}
		return nil
	}, nil
}

// Detach disconnects dev and waits (up to timeout) until the kernel shows
// it free. The serving process then sees its wait return.
func Detach(dev string, timeout time.Duration) error {
	if !Connected(dev) {
		return fmt.Errorf("%w: %s", ErrNotMapped, dev)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("attach: open %s: %w", dev, err)
	}
	err = ioctl(int(f.Fd()), nbdDisconnect, 0)
	// Close before waiting: an open descriptor holds the device's
	// configuration, and with it the connection we wait to see gone.
	f.Close()
	if err != nil {
		return fmt.Errorf("attach: NBD_DISCONNECT on %s: %w", dev, err)
	}
	for end := time.Now().Add(timeout); Connected(dev); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("attach: %s still connected %v after NBD_DISCONNECT", dev, timeout)
		}
	}
	return nil
}

// blockSignals blocks every signal that can be blocked on the calling
// thread.
func blockSignals() {
	var all unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i] // all ones, whatever the word size
	}
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil) // cannot fail with a valid how
}

func ioctl(fd int, req uint, arg uintptr) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
	if e != 0 {
		return e
	}
	return nil
}
