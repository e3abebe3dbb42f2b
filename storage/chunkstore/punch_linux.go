package chunkstore

import (
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
