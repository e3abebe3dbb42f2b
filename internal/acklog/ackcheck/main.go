//go:build linux

// Command ackcheck is the guest side of the power-loss test: it writes a
// block device with package acklog's units and log, and checks it after
// the crash.
//
//	ackcheck write -dev /dev/nbd0 -log /host/log.0 [-writers 4] [-small-writers 0] [-seq-base 0] [-for 3m]
//	    writes until -for passes (or the power goes): each writer picks a
//	    random run of 1-256 units (4 KiB-1 MiB; the first -small-writers
//	    writers 1-8 units) in its region, logs it,
//	    writes it with O_DIRECT, logs the acknowledgement. No flushes: a
//	    write the device acknowledged must be durable by itself.
//	ackcheck verify -dev /dev/nbd0 -log /host/log.0 [-base /host/state.0] -out /host/state.1 [-writers 4]
//	    reads every unit and checks it against the base state and the
//	    log; if every unit is good, writes the state found to -out (the
//	    next cycle's -base).
//	    Exit status 1 on any lost or corrupt unit.
//
// With -ack-dev DEV -ack-off BYTES, write also records each writer's last
// acknowledged write on DEV at BYTES (acklog's ack records, written with
// O_DIRECT and no flush after each acknowledgement), and verify takes the
// acknowledgements from there instead of from the log: for checking a
// crash state of DEV replayed from its write log.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/tsumiki-storage/tsumiki/internal/acklog"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ackcheck write|verify [flags] (see the package doc)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dev := fs.String("dev", "", "the block device")
	logPath := fs.String("log", "", "the write log (on storage the crash does not reach)")
	writers := fs.Int("writers", 4, "concurrent writers, each with its own region")
	seqBase := fs.Uint64("seq-base", 0, "write: seqs start after this (unique across cycles)")
	dur := fs.Duration("for", 3*time.Minute, "write: stop after this long")
	small := fs.Int("small-writers", 0, "write: this many writers (the first ones) write 4-32 KiB only, the rest 4 KiB-1 MiB")
	base := fs.String("base", "", "verify: the state before the log's writes (empty: a fresh device)")
	out := fs.String("out", "", "verify: where to write the state found")
	ackDev := fs.String("ack-dev", "", "the device to keep ack records on (empty: none)")
	ackOff := fs.Int64("ack-off", 0, "where on -ack-dev the records start (4 KiB aligned)")
	fs.Parse(os.Args[2:])
	if *dev == "" || *logPath == "" {
		fmt.Fprintln(os.Stderr, "ackcheck: -dev and -log are required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "write":
		err = write(*dev, *logPath, *writers, *small, *seqBase, *dur, ackRecords{*ackDev, *ackOff})
	case "verify":
		err = verify(*dev, *logPath, *writers, *base, *out, ackRecords{*ackDev, *ackOff})
	default:
		err = fmt.Errorf("unknown command %q (write or verify)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ackcheck:", err)
		os.Exit(1)
	}
}

// openDevice opens dev with O_DIRECT and returns its layout for writers.
func openDevice(dev string, flag, writers int) (*os.File, acklog.Layout, error) {
	f, err := os.OpenFile(dev, flag|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, acklog.Layout{}, err
	}
	l, err := layoutOf(f, writers)
	if err != nil {
		f.Close()
		return nil, l, err
	}
	return f, l, nil
}

func layoutOf(f *os.File, writers int) (acklog.Layout, error) {
	size, err := f.Seek(0, 2)
	if err != nil {
		return acklog.Layout{}, err
	}
	l := acklog.Layout{Units: size / acklog.UnitSize, Writers: writers}
	if writers < 1 || l.Units < int64(writers)*256 {
		return l, fmt.Errorf("%d units for %d writers: need at least 256 each", l.Units, writers)
	}
	return l, nil
}

// ackRecords is where ack records are kept; dev "" for none.
type ackRecords struct {
	dev string
	off int64
}

func (a ackRecords) at(w int) int64 { return a.off + int64(w)*acklog.AckRecordSize }

func write(dev, logPath string, writers, small int, seqBase uint64, dur time.Duration, recs ackRecords) error {
	f, l, err := openDevice(dev, os.O_RDWR, writers)
	if err != nil {
		return err
	}
	defer f.Close()
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	log := acklog.NewLog(lf)
	var af *os.File
	if recs.dev != "" {
		// No O_DSYNC: a flush here would make the cluster's unflushed
		// writes durable too, and hide an acknowledgement given too early.
		if af, err = os.OpenFile(recs.dev, os.O_WRONLY|syscall.O_DIRECT, 0); err != nil {
			return err
		}
		defer af.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var acked atomic.Int64
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			sizes := 9 // 1-256 units
			if w < small {
				sizes = 4 // 1-8 units: writes a store logs whole, no placement
			}
			if err := writer(ctx, f, log, af, recs.at(w), l, w, sizes, seqBase, &acked); err != nil {
				fmt.Fprintln(os.Stderr, "ackcheck:", err) // now: the power may go before the exit
				errs <- err
				cancel() // the others stop after their write in flight
			}
		})
	}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Printf("ackcheck: %d writes acknowledged\n", acked.Load())
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("ackcheck: stopped after %s, %d writes acknowledged\n", dur, acked.Load())
	return nil
}

// writer writes writer w's region until ctx ends; with af, it records
// each acknowledgement there at recOff.
func writer(ctx context.Context, f *os.File, log *acklog.Log, af *os.File, recOff int64, l acklog.Layout, w, sizes int,
	seqBase uint64, acked *atomic.Int64) error {
	lo, hi := l.Region(w)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
	buf := aligned(256 * acklog.UnitSize)
	rec := aligned(acklog.AckRecordSize)
	for seq := seqBase + 1; ctx.Err() == nil; seq++ {
		n := min(int64(1)<<rng.IntN(sizes), hi-lo)
		u0 := lo + rng.Int64N(hi-lo-n+1)
		p := buf[:n*acklog.UnitSize]
		for k := range n {
			acklog.EncodeUnit(p[k*acklog.UnitSize:(k+1)*acklog.UnitSize], w, u0+k, seq)
		}
		if err := log.Issue(w, seq, u0, n); err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if _, err := f.WriteAt(p, u0*acklog.UnitSize); err != nil {
			return fmt.Errorf("writer %d: write %d of units [%d, %d): %w", w, seq, u0, u0+n, err)
		}
		if af != nil { // first: the sooner after the acknowledgement, the stricter the check
			acklog.EncodeAck(rec, w, seq)
			if _, err := af.WriteAt(rec, recOff); err != nil {
				return fmt.Errorf("writer %d: ack record of write %d: %w", w, seq, err)
			}
		}
		if err := log.Ack(w, seq); err != nil {
			return fmt.Errorf("log: %w", err)
		}
		acked.Add(1)
	}
	return nil
}

func verify(dev, logPath string, writers int, basePath, outPath string, recs ackRecords) error {
	f, l, err := openDevice(dev, os.O_RDONLY, writers)
	if err != nil {
		return err
	}
	defer f.Close()
	var base acklog.State
	if basePath != "" {
		b, err := os.ReadFile(basePath)
		if err != nil {
			return err
		}
		if base, err = acklog.UnmarshalState(b, l.Units); err != nil {
			return err
		}
	}
	lf, err := os.Open(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	var exp *acklog.Expect
	var st acklog.Stats
	if recs.dev == "" {
		exp, st, err = acklog.Replay(lf, base, l)
	} else {
		var acked []uint64
		if acked, err = readAckRecords(recs, writers); err != nil {
			return err
		}
		fmt.Printf("ackcheck verify: acknowledged writes recorded on %s: %v\n", recs.dev, acked)
		exp, st, err = acklog.ReplayAcked(lf, base, l, acked)
	}
	if err != nil {
		return err
	}
	found := make(acklog.State, l.Units)
	var bad []error
	written, landed := 0, 0
	buf := aligned(256 * acklog.UnitSize)
	for u0 := int64(0); u0 < l.Units; u0 += 256 {
		p := buf[:min(256, l.Units-u0)*acklog.UnitSize]
		if _, err := f.ReadAt(p, u0*acklog.UnitSize); err != nil {
			return fmt.Errorf("read units from %d: %w", u0, err)
		}
		for k := int64(0); k < int64(len(p))/acklog.UnitSize; k++ {
			u := u0 + k
			seq, err := exp.Check(u, p[k*acklog.UnitSize:(k+1)*acklog.UnitSize])
			if err != nil {
				bad = append(bad, err)
				continue
			}
			found[u] = seq
			if seq != 0 {
				written++
			}
			if exp.InFlightLanded(u, seq) {
				landed++
			}
		}
	}
	if outPath != "" && len(bad) == 0 {
		// Whole or not at all, and only for a check that passed: the
		// power may be cut while it is written or right after, and the
		// host takes the file's presence to mean the check passed (the
		// next check starts from it).
		b, _ := found.MarshalBinary()
		if err := os.WriteFile(outPath+".tmp", b, 0o644); err != nil {
			return err
		}
		if err := os.Rename(outPath+".tmp", outPath); err != nil {
			return err
		}
	}
	fmt.Printf("ackcheck verify: %d units (%d written), %d writes issued, %d acknowledged, %d in flight at the crash (%d of their units landed), %d after it, %d bad units\n",
		l.Units, written, st.Issued, st.Acked, st.InFlight, landed, st.Later, len(bad))
	for i, err := range bad {
		if i == 20 {
			fmt.Printf("... and %d more\n", len(bad)-i)
			break
		}
		fmt.Println("  ", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d units lost or corrupt", len(bad))
	}
	return nil
}

func readAckRecords(recs ackRecords, writers int) ([]uint64, error) {
	f, err := os.OpenFile(recs.dev, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := aligned(acklog.AckRecordSize)
	acked := make([]uint64, writers)
	for w := range acked {
		if _, err := f.ReadAt(p, recs.at(w)); err != nil {
			return nil, fmt.Errorf("ack record of writer %d: %w", w, err)
		}
		if acked[w], err = acklog.DecodeAck(p, w); err != nil {
			return nil, err
		}
	}
	return acked, nil
}

// aligned returns n bytes at an address O_DIRECT accepts.
func aligned(n int) []byte {
	raw := make([]byte, n+acklog.UnitSize)
	off := int(-uintptr(unsafe.Pointer(&raw[0])) & (acklog.UnitSize - 1))
	return raw[off : off+n : off+n]
}
