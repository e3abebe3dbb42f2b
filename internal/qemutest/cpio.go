package qemutest

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// cpioFile is one entry of a newc ("070701") cpio archive.
type cpioFile struct {
	name string // path inside the archive, without a leading "/"
	mode uint32 // full st_mode: type bits and permissions
	data []byte // file contents; nil for a directory
}

// st_mode type bits.
const (
	modeDir = 0o040000
	modeReg = 0o100000
)

// writeCPIO writes files as a newc archive with a trailer. Every header and
// every file's data starts 4-byte aligned, as the kernel requires; uid, gid
// and mtime are 0.
func writeCPIO(w io.Writer, files []cpioFile) error {
	bw := bufio.NewWriter(w)
	var off int64
	put := func(p []byte) {
		n, _ := bw.Write(p) // the error is sticky; Flush returns it
		off += int64(n)
	}
	pad := func() {
		if r := off % 4; r != 0 {
			put(make([]byte, 4-r))
		}
	}
	entry := func(ino int, name string, mode uint32, nlink int, data []byte) {
		put(fmt.Appendf(nil, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0))
		put(append([]byte(name), 0))
		pad()
		put(data)
		pad()
	}
	for i, f := range files {
		nlink := 1
		if f.mode&0o170000 == modeDir {
			nlink = 2
		}
		entry(i+1, f.name, f.mode, nlink, f.data)
	}
	entry(0, "TRAILER!!!", 0, 1, nil)
	return bw.Flush()
}

// writeInitrd writes base (a cpio archive, compressed or not) to path,
// zero-pads it to a multiple of 4 bytes and appends files as a second,
// uncompressed cpio archive, which the kernel unpacks over the first.
func writeInitrd(path, base string, files []cpioFile) (err error) {
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	n, err := io.Copy(out, in)
	if err != nil {
		return fmt.Errorf("copy %s: %w", base, err)
	}
	if r := n % 4; r != 0 {
		if _, err := out.Write(make([]byte, 4-r)); err != nil {
			return err
		}
	}
	return writeCPIO(out, files)
}
