package chunkstore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// punch frees the file range [off, off+n); where the filesystem cannot punch
// holes the bytes stay (the meta bitmap marks the blocks as holes anyway).
func punch(f *os.File, off, n int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// freeBytes returns the space unprivileged writers may still use on the
// file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// dropCache asks the kernel to drop the clean cached pages of the file
// range [off, off+n). Dirty pages are not dropped (their writeback is only
// started), so no data is lost whatever is written there meanwhile.
func dropCache(f *os.File, off, n int64) {
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}

// dataRanges returns the allocated byte ranges of f within [lo, hi).
func dataRanges(f *os.File, lo, hi int64) ([][2]int64, error) {
	var out [][2]int64
	for off := lo; off < hi; {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && d >= hi) {
			break
		}
		if err != nil {
			return nil, err
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]int64{d, min(h, hi)})
		off = h
	}
	return out, nil
}
