package chunkstore

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// RunReclaim keeps the memory-mapped files of the store from accumulating
// in the process's resident set. Badger writes its value log and memtable
// logs through shared file mappings and maps its tables, so every page it
// has touched stays resident in this process until the kernel needs the
// memory: an OSD's RSS would grow with the data written, although those
// pages are only page cache. Every ReclaimInterval, when the process's
// file-backed resident memory exceeds ReclaimAbove, the mappings of files
// under Dir are released with madvise(MADV_DONTNEED): for shared file
// mappings this only drops this process's page-table entries (dirty pages
// stay dirty in the page cache and are written back as usual, msync still
// covers them); a later access maps the page again from the page cache.
// The mappings are also marked MADV_RANDOM, so that a small read maps (and
// reads ahead) one page rather than a window around it.
// It returns nil when ctx is done.
func (s *Store) RunReclaim(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if rssFile() < s.cfg.ReclaimAbove {
			continue
		}
		if err := s.releaseMappings(); err != nil {
			s.log.Debug("releasing mapped store pages failed", zap.Error(err))
		}
	}
}

// rssFile returns the process's file-backed resident bytes (0 if unknown).
func rssFile() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// releaseMappings madvises away every mapping of a file under the store's
// directory.
func (s *Store) releaseMappings() error {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	dir := s.cfg.Dir + "/"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], dir) || !strings.Contains(fields[1], "s") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return errno
		}
		// Reads of blocks are small and random: without this, each
		// page fault maps (and reads ahead) a whole window around it.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_RANDOM)
	}
	return sc.Err()
}
