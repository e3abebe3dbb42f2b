package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

func newObjectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "object", Short: "put, get, stat, remove and list objects (like rados)"}
	cmd.AddCommand(newObjectPutCmd(g), newObjectGetCmd(g), newObjectStatCmd(g), newObjectRmCmd(g), newObjectLsCmd(g))
	return cmd
}

// objectError turns client errors into operator messages.
func objectError(err error, pool, name string) error {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return fmt.Errorf("object %q not found in pool %q (see `tsumiki object ls %s`)", name, pool, pool)
	case errors.Is(err, client.ErrNoPool):
		return fmt.Errorf("pool %q does not exist (see `tsumiki pool ls`)", pool)
	case errors.Is(err, client.ErrTooLarge):
		return fmt.Errorf("objects are limited to %d MiB: %w", client.MaxObjectSize>>20, err)
	}
	return err
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, client.MaxObjectSize+1))
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > client.MaxObjectSize {
		return nil, fmt.Errorf("%s is %d bytes; objects are limited to %d MiB", path, st.Size(), client.MaxObjectSize>>20)
	}
	return os.ReadFile(path)
}

func newObjectPutCmd(g *globals) *cobra.Command {
	var off int64
	cmd := &cobra.Command{
		Use:   "put POOL NAME FILE",
		Short: "write FILE (or - for stdin) as an object, replacing it (like rados put), or into it at --offset",
		Long: `Writes FILE (or - for stdin) as the object POOL/NAME, creating it or
replacing what it held: afterwards the object is FILE, as with rados put.
With --offset, writes FILE into the object at that offset and keeps the rest
of it (a patch; the object grows if FILE ends past it).

A replace is a write and then a cut to FILE's size: interrupted between the
two, the object holds FILE followed by the old object's tail, and running
the same put again finishes it.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name := args[0], args[1]
			data, err := readInput(args[2])
			if err != nil {
				return err
			}
			if off < 0 || off+int64(len(data)) > client.MaxObjectSize {
				return fmt.Errorf("offset %d + %d bytes is past the %d MiB object limit", off, len(data), client.MaxObjectSize>>20)
			}
			return withClient(cmd, g, 60*time.Second, func(ctx context.Context, c *client.Client) error {
				// A replace cuts only an object that was longer: a cut
				// right after a large write on a follower that has not
				// applied it yet would rewrite that write's data inline.
				longer := false
				if !cmd.Flags().Changed("offset") {
					info, err := c.Stat(ctx, pool, name)
					switch {
					case err == nil:
						longer = info.Size > int64(len(data))
					case !errors.Is(err, client.ErrNotFound):
						return objectError(err, pool, name)
					}
				}
				if err := c.Write(ctx, pool, name, off, data); err != nil {
					return objectError(err, pool, name)
				}
				if !longer {
					return nil
				}
				return objectError(c.Truncate(ctx, pool, name, int64(len(data))), pool, name)
			})
		},
	}
	cmd.Flags().Int64Var(&off, "offset", 0, "write into the object at this byte offset, keeping the rest of it")
	return cmd
}

func newObjectGetCmd(g *globals) *cobra.Command {
	var off, length int64
	cmd := &cobra.Command{
		Use:   "get POOL NAME FILE",
		Short: "read an object (or --offset/--length of it) into FILE (or - for stdout)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, path := args[0], args[1], args[2]
			if off < 0 || length < 0 || off+length > client.MaxObjectSize {
				return fmt.Errorf("offset %d + length %d is past the %d MiB object limit", off, length, client.MaxObjectSize>>20)
			}
			return withClient(cmd, g, 60*time.Second, func(ctx context.Context, c *client.Client) error {
				if !cmd.Flags().Changed("length") {
					info, err := c.Stat(ctx, pool, name)
					if err != nil {
						return objectError(err, pool, name)
					}
					length = max(0, info.Size-off)
				}
				buf := make([]byte, length)
				if err := c.Read(ctx, pool, name, off, buf); err != nil {
					return objectError(err, pool, name)
				}
				return writeOutput(path, buf)
			})
		},
	}
	cmd.Flags().Int64Var(&off, "offset", 0, "byte offset in the object")
	cmd.Flags().Int64Var(&length, "length", 0, "bytes to read (default: to the end of the object)")
	return cmd
}

// writeOutput writes atomically: a failed get never clobbers FILE.
func writeOutput(path string, data []byte) error {
	if path == "-" {
		_, err := os.Stdout.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tsumiki-get-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newObjectStatCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stat POOL NAME",
		Short: "show an object's size and version",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, 30*time.Second, func(ctx context.Context, c *client.Client) error {
				info, err := c.Stat(ctx, args[0], args[1])
				if err != nil {
					return objectError(err, args[0], args[1])
				}
				return output(g, info, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "%s/%s size %d version %d\n", args[0], info.Name, info.Size, info.Version)
				})
			})
		},
	}
}

func newObjectRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm POOL NAME",
		Short: "remove an object",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, 30*time.Second, func(ctx context.Context, c *client.Client) error {
				if _, err := c.Stat(ctx, args[0], args[1]); err != nil {
					return objectError(err, args[0], args[1])
				}
				return objectError(c.Delete(ctx, args[0], args[1]), args[0], args[1])
			})
		},
	}
}

func newObjectLsCmd(g *globals) *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "ls POOL",
		Short: "list a pool's objects",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, 120*time.Second, func(ctx context.Context, c *client.Client) error {
				objs, err := c.List(ctx, args[0], prefix)
				if err != nil {
					return objectError(err, args[0], "")
				}
				return output(g, objs, func(w *tabwriter.Writer) {
					for _, o := range objs {
						fmt.Fprintf(w, "%s\t%d\n", o.Name, o.Size)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only names starting with this")
	return cmd
}
