package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// copyChunk is how much of an image export and import move per step; the
// image splits each step into concurrent object IOs.
const copyChunk = 16 << 20

// sparseBlock is the granularity at which runs of zeros become holes.
const sparseBlock = 64 << 10

func newImageExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export POOL/NAME FILE|-",
		Short: "copy an image into FILE (sparse: holes stay holes) or to stdout",
		Long: `Writes the whole image to FILE, which must not exist yet, or to stdout
with -. Ranges that were never written (and runs of zeros) become holes in
FILE, so a thin image exports to a sparse file; on stdout they are written
as zeros. FILE appears only once the export is complete. Progress goes to
stderr. The image is read without taking its lock: export an image that is
not being written, or the copy mixes old and new data.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := parseSpec(args[0])
			if err != nil {
				return err
			}
			path := args[1]
			if path != "-" {
				if _, err := os.Lstat(path); err == nil {
					return fmt.Errorf("%s exists: remove it or export to another path", path)
				}
			}
			return withImages(cmd, g, 0, func(ctx context.Context, ic *imageConn) error {
				var n int64
				err := withOpenImage(ctx, ic.store, pool, name, image.OpenOptions{ReadOnly: true}, func(ctx context.Context, im *image.Image) error {
					var err error
					n, err = exportImage(ctx, im, path)
					return err
				})
				if err != nil {
					return imageError(err, pool, name, "")
				}
				if path == "-" {
					return nil // stdout holds the data
				}
				return output(g, map[string]any{"image": pool + "/" + name, "file": path, "bytes": n}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "exported %s/%s (%s) to %s\n", pool, name, formatSize(n), path)
				})
			})
		},
	}
}

// exportImage copies im to path (or stdout for "-") and returns the bytes
// copied.
func exportImage(ctx context.Context, im *image.Image, path string) (int64, error) {
	size := im.Size()
	bar := newProgress("export "+im.Header().Spec(), unitBytes)
	defer bar.finish()
	if path == "-" {
		return size, copyOut(ctx, im, size, bar, func(p []byte, _ int64, hole bool) error {
			if hole {
				clear(p)
			}
			_, err := os.Stdout.Write(p)
			return err
		})
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tsumiki-export-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	err = copyOut(ctx, im, size, bar, func(p []byte, off int64, hole bool) error {
		if hole {
			return nil
		}
		return writeSparse(tmp, p, off)
	})
	if err == nil {
		err = tmp.Truncate(size) // the trailing hole, if any
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return size, err
}

// copyOut walks the image in chunks and hands each allocated or hole run to
// emit, in order. Holes are not read.
func copyOut(ctx context.Context, im *image.Image, size int64, bar *progressBar, emit func(p []byte, off int64, hole bool) error) error {
	buf := make([]byte, copyChunk)
	for off := int64(0); off < size; off += copyChunk {
		n := min(copyChunk, size-off)
		exts, err := im.Extents(ctx, off, n)
		if err != nil {
			return err
		}
		for _, x := range exts {
			p := buf[x.Offset-off : x.End()-off]
			if x.Allocated {
				if err := im.ReadAt(ctx, p, x.Offset); err != nil {
					return err
				}
			}
			if err := emit(p, x.Offset, !x.Allocated); err != nil {
				return err
			}
		}
		bar.update(off+n, size)
	}
	return nil
}

// writeSparse writes p at off, skipping aligned blocks of zeros.
func writeSparse(f io.WriterAt, p []byte, off int64) error {
	zero := make([]byte, sparseBlock)
	for len(p) > 0 {
		n := min(len(p), sparseBlock-int(off%sparseBlock))
		if !bytes.Equal(p[:n], zero[:n]) {
			if _, err := f.WriteAt(p[:n], off); err != nil {
				return err
			}
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}
