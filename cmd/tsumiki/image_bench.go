package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// benchConfig is what `image bench` measures.
type benchConfig struct {
	ioType, pattern string
	ioSize, total   int64
	threads         int
}

// benchResult is what `image bench` prints.
type benchResult struct {
	Image     string  `json:"image"`
	IOType    string  `json:"io_type"`
	IOPattern string  `json:"io_pattern"`
	IOSize    int64   `json:"io_size"`
	Threads   int     `json:"io_threads"`
	Ops       int64   `json:"ops"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	IOPS      float64 `json:"iops"`
	MBps      float64 `json:"mb_per_sec"` // 10^6 bytes per second
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
}

func newImageBenchCmd(g *globals) *cobra.Command {
	var bc benchConfig
	var ioSize, total string
	cmd := &cobra.Command{
		Use:   "bench POOL/NAME --io-type read|write",
		Short: "measure an image's IOPS, throughput and latency (write overwrites its data)",
		Long: `Runs --io-threads workers issuing --io-size IOs, sequential or random
(aligned to --io-size), until --io-total bytes are done, and prints IOPS,
MB/s (10^6 bytes/s) and the 50th and 99th percentile latency. A write
bench overwrites the image's data with random bytes and takes its lock; a
read bench of never-written ranges measures the round trip to a missing
object, not disk reads.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := parseSpec(args[0])
			if err != nil {
				return err
			}
			if bc.ioType != "read" && bc.ioType != "write" {
				return fmt.Errorf("--io-type %q: use read or write", bc.ioType)
			}
			if bc.pattern != "seq" && bc.pattern != "rand" {
				return fmt.Errorf("--io-pattern %q: use seq or rand", bc.pattern)
			}
			if bc.threads < 1 || bc.threads > 1024 {
				return fmt.Errorf("--io-threads %d: use 1 to 1024", bc.threads)
			}
			if bc.ioSize, err = parseImageSize("--io-size", ioSize); err != nil {
				return err
			}
			if bc.ioSize > 64<<20 {
				return fmt.Errorf("--io-size %s: use at most 64M", ioSize)
			}
			if bc.total, err = parseSize(total); err != nil || bc.total < bc.ioSize {
				return fmt.Errorf("--io-total %q: give at least one --io-size, e.g. 256M", total)
			}
			return withImages(cmd, g, 0, func(ctx context.Context, ic *imageConn) error {
				opts := image.OpenOptions{ReadOnly: bc.ioType == "read"}
				var res benchResult
				err := withOpenImage(ctx, ic.store, pool, name, opts, func(ctx context.Context, im *image.Image) error {
					if bc.ioSize > im.Size() {
						return fmt.Errorf("--io-size %s is larger than the image (%s)", ioSize, formatSize(im.Size()))
					}
					res, err = runBench(ctx, im, bc)
					return err
				})
				if err != nil {
					return imageError(err, pool, name, lockHintWait+" (or bench with --io-type read, which takes no lock)")
				}
				return output(g, res, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "%s %s %s x %d threads on %s: %d ops, %s in %.2fs\n", res.IOPattern, res.IOType,
						formatSize(res.IOSize), res.Threads, res.Image, res.Ops, formatSize(res.Bytes), res.Seconds)
					fmt.Fprintf(w, "  IOPS:\t%.0f\n  MB/s:\t%.1f\n  latency p50:\t%.2f ms\n  latency p99:\t%.2f ms\n", res.IOPS, res.MBps, res.P50ms, res.P99ms)
				})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&bc.ioType, "io-type", "", "read or write (required)")
	f.StringVar(&ioSize, "io-size", "4K", "bytes per IO (a multiple of 512)")
	f.StringVar(&bc.pattern, "io-pattern", "seq", "seq or rand")
	f.IntVar(&bc.threads, "io-threads", 16, "IOs in flight")
	f.StringVar(&total, "io-total", "256M", "bytes to read or write in all")
	return cmd
}

// runBench runs the workers and summarizes their latencies.
func runBench(ctx context.Context, im *image.Image, bc benchConfig) (benchResult, error) {
	slots := im.Size() / bc.ioSize // IO-sized, aligned slots in the image
	ops := bc.total / bc.ioSize
	bar := newProgress("bench "+im.Header().Spec(), unitBytes)
	defer bar.finish()
	var next atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	grp, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for w := range bc.threads {
		grp.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			buf := make([]byte, bc.ioSize)
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			}()
			for {
				i := next.Add(1) - 1
				if i >= ops || gctx.Err() != nil {
					return nil
				}
				off := (i % slots) * bc.ioSize
				if bc.pattern == "rand" {
					off = rng.Int64N(slots) * bc.ioSize
				}
				t := time.Now()
				var err error
				if bc.ioType == "write" {
					err = im.WriteAt(gctx, buf, off)
				} else {
					err = im.ReadAt(gctx, buf, off)
				}
				if err != nil {
					return err
				}
				mine = append(mine, time.Since(t))
				bar.update((i+1)*bc.ioSize, ops*bc.ioSize)
			}
		})
	}
	if err := grp.Wait(); err != nil {
		return benchResult{}, err
	}
	secs := time.Since(start).Seconds()
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Microseconds()) / 1000
	}
	bytes := ops * bc.ioSize
	h := im.Header()
	return benchResult{Image: h.Spec(), IOType: bc.ioType, IOPattern: bc.pattern, IOSize: bc.ioSize, Threads: bc.threads,
		Ops: ops, Bytes: bytes, Seconds: secs, IOPS: float64(ops) / secs, MBps: float64(bytes) / secs / 1e6,
		P50ms: pct(0.50), P99ms: pct(0.99)}, nil
}
