package chunkstore

import (
	"os"
	"path/filepath"
	"testing"
)

// TestObjectSyncer: the checkpoint's sync of object files works with
// syncfs and with the per-path fallback (used where syncfs is refused),
// and paths deleted since they were written are skipped, not errors.
func TestObjectSyncer(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "f"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	files, dirs := []string{"d/f", "d/gone"}, []string{"d", "gone"}
	o, err := openObjectSyncer(root)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if err := o.sync(files, dirs); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if err := o.sync(nil, nil); err != nil {
		t.Fatalf("sync of nothing: %v", err)
	}
	if err := syncEach(root, files, dirs); err != nil {
		t.Fatalf("per-path fallback: %v", err)
	}
}
