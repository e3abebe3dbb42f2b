package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tsumiki-storage/tsumiki/blockdev/attach"
	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
)

// mapConfig configures `tsumiki map`.
type mapConfig struct {
	Device     string
	ReadOnly   bool
	BreakLock  bool
	Timeout    time.Duration
	Foreground bool
	StateDir   string
}

// readyFD is the descriptor on which a background `map` reports to its parent.
const readyFD = 3

func newMapCmd(g *globals) *cobra.Command {
	var cfg mapConfig
	cmd := &cobra.Command{
		Use:   "map POOL/NAME",
		Short: "attach an image to this Linux host as /dev/nbdX",
		Long: `Attaches an image through the kernel's NBD client and prints the device
(like rbd-nbd map). A background process serves the device until
'tsumiki unmap' (or --foreground: this process, until Ctrl-C). The image's
exclusive lock is held while it is mapped; if a process of this host that
is gone (killed, or lost with the host's power) still holds it, map waits
up to 20 s for that lock to expire. Needs Linux, root and the nbd kernel
module.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := parseSpec(args[0])
			if err != nil {
				return err
			}
			if err := attach.Check(cmd.Context()); err != nil {
				return err
			}
			if !cfg.Foreground {
				return mapInBackground(cmd.Context(), filepath.Join(cfg.StateDir, "map-"+pool+"-"+name+".log"))
			}
			log, err := newLogger(g)
			if err != nil {
				return err
			}
			defer log.Sync()
			return runMap(cmd.Context(), g, cfg, pool+"/"+name, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Device, "device", "", "use this /dev/nbdX (default: the first free one)")
	f.BoolVar(&cfg.ReadOnly, "read-only", false, "map read-only (no lock taken)")
	f.BoolVar(&cfg.BreakLock, "break-lock", false, "take the image over from its current holder, fencing it")
	f.DurationVar(&cfg.Timeout, "io-timeout", 60*time.Second, "kernel request timeout: I/O fails after this instead of hanging")
	f.BoolVar(&cfg.Foreground, "foreground", false, "serve the device from this process until it is unmapped or stopped")
	f.StringVar(&cfg.StateDir, "state-dir", attach.DefaultStateDir, "where mapped devices are recorded")
	return cmd
}

// mapInBackground re-runs this command with --foreground as a detached
// process, its log appended to logPath, and waits until it reports the
// device (or why it failed).
func mapInBackground(ctx context.Context, logPath string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("map log: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	c := exec.Command(exe, append(os.Args[1:], "--foreground")...)
	c.ExtraFiles = []*os.File{w} // fd 3 = readyFD
	c.Stdout, c.Stderr = logf, logf
	c.Env = append(os.Environ(), "TSUMIKI_MAP_READY_FD=3")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this terminal
	if err := c.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	line, rerr := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "OK "):
		_ = c.Process.Release()
		fmt.Println(strings.TrimPrefix(line, "OK "))
		return nil
	case strings.HasPrefix(line, "ERR "):
		_ = c.Wait()
		return errors.New(strings.TrimPrefix(line, "ERR "))
	}
	_ = c.Wait()
	return fmt.Errorf("the mapping process ended without reporting (%v); its log: %s", rerr, logPath)
}

// report tells a waiting parent the outcome, when there is one.
func report(line string) {
	if os.Getenv("TSUMIKI_MAP_READY_FD") == "" {
		return
	}
	f := os.NewFile(readyFD, "ready")
	fmt.Fprintln(f, line)
	f.Close()
}

// runMap serves spec to the kernel until the device is disconnected or ctx
// ends (then it disconnects the device itself).
func runMap(ctx context.Context, g *globals, cfg mapConfig, spec string, log *zap.Logger) (err error) {
	defer func() {
		if err != nil {
			report("ERR " + err.Error())
		}
	}()
	k, err := attachKernel(ctx, g, spec, attachOpts{Device: cfg.Device, ReadOnly: cfg.ReadOnly, BreakLock: cfg.BreakLock,
		Timeout: cfg.Timeout, Program: "tsumiki map", WaitGone: 2 * image.DefaultLockTTL}, log)
	if err != nil {
		return err
	}
	rec := attach.Record{Device: k.Dev, Image: spec, ReadOnly: cfg.ReadOnly, PID: os.Getpid(), Since: time.Now()}
	if err := attach.Save(cfg.StateDir, rec); err != nil {
		log.Warn("cannot record the mapping; showmapped will not list it", zap.String("dir", cfg.StateDir), zap.Error(err))
	}
	defer func() { _ = attach.Remove(cfg.StateDir, k.Dev) }()
	report("OK " + k.Dev)
	select {
	case err = <-k.Disconnected():
		if derr := k.Detach(true); err == nil {
			err = derr
		}
	case <-ctx.Done():
		log.Info("stopping: disconnecting the device", zap.String("device", k.Dev))
		err = k.Detach(false)
	}
	return err
}

// imageMapError adds what to do to an open failure.
func imageMapError(err error, spec string) error {
	switch {
	case errors.Is(err, nbd.ErrExportNotFound):
		return fmt.Errorf("image %s does not exist (see `tsumiki image ls`): %w", spec, err)
	case errors.Is(err, nbd.ErrRefused):
		return fmt.Errorf("%w (or map it --read-only)", err)
	}
	return err
}

func newUnmapCmd(g *globals) *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "unmap /dev/nbdX|POOL/NAME",
		Short: "detach an image mapped with 'tsumiki map'",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := attach.Load(stateDir)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Device == args[0] || r.Image == args[0] {
					if err := attach.Detach(r.Device, 30*time.Second); err != nil {
						return err
					}
					waitGone(r.PID, 30*time.Second)
					fmt.Printf("unmapped %s (%s)\n", r.Device, r.Image)
					return nil
				}
			}
			if strings.HasPrefix(args[0], "/dev/") && attach.Connected(args[0]) {
				return attach.Detach(args[0], 30*time.Second) // mapped by another tool
			}
			return fmt.Errorf("%s is not mapped (see `tsumiki showmapped`)", args[0])
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", attach.DefaultStateDir, "where mapped devices are recorded")
	return cmd
}

// waitGone waits until pid has exited, at most d.
func waitGone(pid int, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if unix.Kill(pid, 0) != nil {
			return
		}
	}
}

func newShowmappedCmd(g *globals) *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "showmapped",
		Short: "list images mapped on this host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			recs, err := attach.Load(stateDir)
			if err != nil {
				return err
			}
			if recs == nil {
				recs = []attach.Record{}
			}
			return output(g, recs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "DEVICE\tIMAGE\tMODE\tPID\tSINCE")
				for _, r := range recs {
					mode := "rw"
					if r.ReadOnly {
						mode = "ro"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", r.Device, r.Image, mode, r.PID, r.Since.Format(time.RFC3339))
				}
			})
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", attach.DefaultStateDir, "where mapped devices are recorded")
	return cmd
}
