//go:build !linux

package chunkstore

import "os"

// objectSyncer makes a checkpoint's object files and directories durable
// with an fsync per path (see syncfs_linux.go for Linux's single syncfs).
type objectSyncer struct{ root string }

func openObjectSyncer(root string) (*objectSyncer, error) { return &objectSyncer{root: root}, nil }

func (o *objectSyncer) sync(files, dirs []string) error { return syncEach(o.root, files, dirs) }

func (o *objectSyncer) close() error { return nil }

// fdatasync makes f durable (fsync: no cheaper call everywhere).
func fdatasync(f *os.File) error { return f.Sync() }

// startWriteback does nothing here: the fdatasync does all the work.
func startWriteback(*os.File, int64, int64) {}
