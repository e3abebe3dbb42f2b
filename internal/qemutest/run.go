package qemutest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// qemuBinary is the QEMU that boots the guest (Debian: qemu-system-x86).
const qemuBinary = "qemu-system-x86_64"

// kernelArgs is the guest's kernel command line. panic=-1 reboots at once
// on a panic, and -no-reboot turns that reboot into QEMU's exit; quiet
// keeps warnings and errors (an NBD timeout, an ext4 error) on the console.
const kernelArgs = "console=ttyS0 panic=-1 quiet"

// Result is what a run left.
type Result struct {
	ExitCode int           // the job's exit status (0-255)
	Console  string        // the serial console, \r removed: firmware, kernel messages, the job's output, the exit marker
	Duration time.Duration // from QEMU's start to its exit
	Accel    string        // "tcg" or "kvm"
}

// Run loads the guest (Load) and runs cfg's script in it (Guest.Run).
func Run(ctx context.Context, tb testing.TB, cfg Config) (Result, error) {
	tb.Helper()
	g, err := Load(ctx, tb)
	if err != nil {
		return Result{}, err
	}
	return g.Run(ctx, tb, cfg)
}

// Run boots a fresh QEMU with cfg's script as the guest's job and returns
// once the guest has powered off, QEMU has been killed or ctx is done. The
// script goes into the guest as a second cpio archive appended to a copy of
// the initramfs (in a temporary folder removed before Run returns).
//
// The first Run of a test binary picks the accelerator (see Available); on
// a host with usable KVM that costs one short probe boot.
//
// A script's non-zero exit is Result.ExitCode, not an error. Errors: a
// Config one (ErrConfig), ErrTimeout when the guest is still running after
// cfg.Timeout (QEMU is killed by PID and waited for), ctx's error when ctx
// ends first, ErrNoExit when QEMU exits without the guest's exit marker.
// With ErrTimeout and ErrNoExit the Result still holds the console.
func (g *Guest) Run(ctx context.Context, tb testing.TB, cfg Config) (Result, error) {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	a, err := g.decideAccel(ctx, tb)
	if err != nil {
		return Result{}, err
	}
	// QEMU opens write logs, and starts them over, but does not create
	// them.
	for _, d := range cfg.disks() {
		if d.Log == "" {
			continue
		}
		if err := os.WriteFile(d.Log, nil, 0o644); err != nil {
			return Result{}, err
		}
	}
	return g.boot(ctx, cfg.withDefaults(), a)
}

// boot runs one QEMU. cfg has its defaults set.
func (g *Guest) boot(ctx context.Context, cfg Config, a accel) (Result, error) {
	qemu, err := exec.LookPath(qemuBinary)
	if err != nil {
		return Result{}, fmt.Errorf("qemutest: %w (apt-get install qemu-system-x86)", err)
	}
	tmp, err := os.MkdirTemp("", "qemutest-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)

	nonce := newNonce()
	initrd := filepath.Join(tmp, "initrd.img")
	job := []cpioFile{
		{name: "tsumiki", mode: modeDir | 0o755},
		{name: "tsumiki/job.sh", mode: modeReg | 0o755, data: []byte(cfg.Script)},
		{name: "tsumiki/nonce", mode: modeReg | 0o644, data: []byte(nonce + "\n")},
	}
	if err := writeInitrd(initrd, g.Initramfs, job); err != nil {
		return Result{}, fmt.Errorf("qemutest: writing the initrd: %w", err)
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var console bytes.Buffer
	var out io.Writer = &console
	if cfg.Log != nil {
		out = io.MultiWriter(&console, cfg.Log)
	}
	// CommandContext kills QEMU (by PID, SIGKILL) when runCtx ends;
	// WaitDelay bounds the wait for its output after that.
	cmd := exec.CommandContext(runCtx, qemu, qemuArgs(g, cfg, a, initrd)...)
	cmd.Stdout, cmd.Stderr = out, out // one writer: exec copies both through one pipe
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)

	start := time.Now()
	runtime.LockOSThread() // the parent-death signal follows the forking thread
	runErr := cmd.Run()
	runtime.UnlockOSThread()

	res := Result{Console: cleanConsole(console.String()), Duration: time.Since(start), Accel: string(a)}
	if code, ok := parseExit(res.Console, nonce); ok {
		res.ExitCode = code
		return res, nil
	}
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("qemutest: run stopped after %s: %w", res.Duration.Round(time.Millisecond), ctx.Err())
	case runCtx.Err() != nil:
		return res, fmt.Errorf("%w after %s (QEMU killed); console ends:\n%s", ErrTimeout, cfg.Timeout, tail(res.Console, 30))
	}
	return res, fmt.Errorf("%w (qemu: %v); console ends:\n%s", ErrNoExit, runErr, tail(res.Console, 30))
}

// qemuArgs is QEMU's command line for one run.
func qemuArgs(g *Guest, cfg Config, a accel, initrd string) []string {
	args := []string{"-machine", "q35", "-accel", string(a)}
	if a == accelKVM {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-m", strconv.Itoa(cfg.MemMiB),
		"-smp", strconv.Itoa(cfg.CPUs),
		"-nographic", "-vga", "none", "-no-reboot",
		"-kernel", g.Kernel,
		"-initrd", initrd,
		"-append", kernelArgs,
		// slirp: the guest is 10.0.2.15, the host's loopback is 10.0.2.2.
		// romfile= skips the iPXE option ROM nobody boots from.
		"-netdev", "user,id=n,ipv6=off",
		"-device", "virtio-net-pci,netdev=n,romfile=",
		"-device", "virtio-rng-pci",
	)
	// Disks in this order, so that the extra disk is /dev/vda and Disks
	// follow it.
	for _, d := range cfg.disks() {
		args = append(args, diskArgs(d)...)
	}
	if g.FioDisk != "" {
		args = append(args,
			"-drive", "file="+qemuOptValue(g.FioDisk)+",format=raw,if=none,id=fio,readonly=on",
			"-device", "virtio-blk-pci,drive=fio,serial=tsumiki-fio")
	}
	if cfg.Share != "" {
		args = append(args,
			"-fsdev", "local,id=host,security_model=none,path="+qemuOptValue(cfg.Share),
			"-device", "virtio-9p-pci,fsdev=host,mount_tag=host")
	}
	return args
}

// diskArgs attaches d as a virtio disk, its drive named by its serial.
func diskArgs(d Disk) []string {
	id := d.Serial
	if d.Log == "" {
		return []string{
			"-drive", "file=" + qemuOptValue(d.Path) + ",format=raw,if=none,id=" + id,
			"-device", "virtio-blk-pci,drive=" + id + ",serial=" + id}
	}
	// blklogwrites over the raw file, its log in another; 512-byte log
	// sectors, the guest's logical block size.
	return []string{
		"-blockdev", "driver=file,node-name=" + id + "file,filename=" + qemuOptValue(d.Path),
		"-blockdev", "driver=file,node-name=" + id + "log,filename=" + qemuOptValue(d.Log),
		"-blockdev", "driver=blklogwrites,node-name=" + id + ",file=" + id + "file,log=" + id + "log,log-sector-size=512",
		"-device", "virtio-blk-pci,drive=" + id + ",serial=" + id}
}

// qemuOptValue escapes a value inside a QEMU -opt a=b,c=d list.
func qemuOptValue(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}

// newNonce returns a random token for the exit marker.
func newNonce() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
