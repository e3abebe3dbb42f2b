package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// importWriters is how many chunks an import writes at once.
const importWriters = 4

var errInputTooLarge = errors.New("the input is larger than the image")

func newImageImportCmd(g *globals) *cobra.Command {
	var size string
	var lf layoutFlags
	cmd := &cobra.Command{
		Use:   "import FILE|- POOL/NAME [--size SIZE]",
		Short: "create an image from FILE or stdin (sparse: runs of zeros are not written)",
		Long: `Creates POOL/NAME (which must not exist) and copies FILE, or stdin with -,
into it. The image size is --size, or FILE's size rounded up to a multiple
of 512; stdin needs --size. Aligned 64 KiB blocks of zeros are not
written, so the image stays thin. If the import fails, the new image is removed again.
Progress goes to stderr.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			pool, name, err := parseSpec(args[1])
			if err != nil {
				return err
			}
			l, err := lf.layout()
			if err != nil {
				return err
			}
			var n int64
			if cmd.Flags().Changed("size") {
				if n, err = parseImageSize("--size", size); err != nil {
					return err
				}
			}
			in, fileSize, err := openInput(path)
			if err != nil {
				return err
			}
			defer in.Close()
			switch {
			case fileSize < 0 && n == 0:
				return fmt.Errorf("importing from stdin needs --size (the image size), e.g. --size 10G")
			case fileSize > n && n > 0:
				return fmt.Errorf("%s has %d bytes, more than --size %s; give a larger --size or leave it out", path, fileSize, size)
			case n == 0:
				n = max(image.SectorSize, (fileSize+image.SectorSize-1)/image.SectorSize*image.SectorSize)
			}
			return withImages(cmd, g, 0, func(ctx context.Context, ic *imageConn) error {
				h, err := ic.store.Create(ctx, image.CreateOptions{Pool: pool, Name: name, Size: n, Layout: l})
				if err != nil {
					return imageError(err, pool, name, "")
				}
				var written int64
				err = withOpenImage(ctx, ic.store, pool, name, image.OpenOptions{}, func(ctx context.Context, im *image.Image) error {
					written, err = importInto(ctx, im, in, path)
					return err
				})
				if err != nil {
					return importFailed(ic, h, imageError(err, pool, name, lockHintWait))
				}
				return output(g, map[string]any{"image": h.Spec(), "size": n, "bytes_written": written}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "imported %s into %s (%s, %s written)\n", path, h.Spec(), formatSize(n), formatSize(written))
				})
			})
		},
	}
	cmd.Flags().StringVar(&size, "size", "", "image size (default: the file's size); required for stdin")
	lf.add(cmd)
	return cmd
}

// openInput opens path ("-" is stdin) and returns its size, or -1 when it
// is not a regular file.
func openInput(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return f, -1, nil
	}
	return f, st.Size(), nil
}

// importInto copies in to the image, skipping blocks of zeros, with a few
// chunks' writes in flight. It returns the bytes written.
func importInto(ctx context.Context, im *image.Image, in io.Reader, path string) (int64, error) {
	size := im.Size()
	bar := newProgress("import "+im.Header().Spec(), unitBytes)
	defer bar.finish()
	grp, gctx := errgroup.WithContext(ctx)
	grp.SetLimit(importWriters)
	var written int64
	for off := int64(0); gctx.Err() == nil; off += copyChunk {
		buf := make([]byte, copyChunk)
		n, err := io.ReadFull(in, buf)
		if n > 0 && off+int64(n) > size {
			err = fmt.Errorf("%w: %s goes on past %d bytes; give a larger --size", errInputTooLarge, path, size)
		} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = nil
		}
		if err != nil {
			grp.Go(func() error { return err })
			break
		}
		if n == 0 {
			break
		}
		for _, r := range dataRuns(buf[:n], off) {
			written += int64(len(r.p))
			grp.Go(func() error { return im.WriteAt(gctx, r.p, r.off) })
		}
		bar.update(off+int64(n), size)
		if n < copyChunk {
			break
		}
	}
	if err := grp.Wait(); err != nil {
		return 0, err
	}
	return written, im.Flush(ctx)
}

// run is a piece of input to write at an image offset.
type run struct {
	p   []byte
	off int64
}

// dataRuns splits p (image bytes at off) into the runs that hold data:
// aligned sparseBlock-sized blocks of zeros are left out, adjacent data
// blocks are merged.
func dataRuns(p []byte, off int64) []run {
	var out []run
	zero := make([]byte, sparseBlock)
	for i := 0; i < len(p); {
		n := min(len(p)-i, sparseBlock-int((off+int64(i))%sparseBlock))
		if !bytes.Equal(p[i:i+n], zero[:n]) {
			if k := len(out) - 1; k >= 0 && out[k].off+int64(len(out[k].p)) == off+int64(i) {
				out[k].p = p[i-len(out[k].p) : i+n]
			} else {
				out = append(out, run{p: p[i : i+n], off: off + int64(i)})
			}
		}
		i += n
	}
	return out
}

// importFailed removes the image a failed import created, so that a retry
// starts clean, and says so.
func importFailed(ic *imageConn, h image.Header, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rerr := ic.store.Remove(ctx, h.Pool, h.Name, image.RemoveOptions{})
	if errors.Is(rerr, image.ErrNotFound) {
		return fmt.Errorf("%w; the image %s is gone (removed by someone else)", err, h.Spec())
	}
	if rerr != nil {
		return fmt.Errorf("%w; the partly imported image %s is still there: remove it with `tsumiki image rm %s` (%v)", err, h.Spec(), h.Spec(), rerr)
	}
	return fmt.Errorf("%w; the partly imported image %s was removed", err, h.Spec())
}
