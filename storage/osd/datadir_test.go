package osd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestIdentityFiles(t *testing.T) {
	dir := t.TempDir()
	id, err := identity(dir)
	if err != nil || len(id) != 32 {
		t.Fatalf("first identity: %q %v", id, err)
	}
	if again, err := identity(dir); err != nil || again != id {
		t.Fatalf("identity read back: %q %v, want %q", again, err, id)
	}
	if _, err := os.Stat(filepath.Join(dir, "osd_uuid.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	// What a power cut left with an older tsumiki: the name, not the bytes.
	if err := os.WriteFile(filepath.Join(dir, "osd_uuid"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := identity(dir); !errors.Is(err, ErrConfig) {
		t.Fatalf("empty osd_uuid: %v, want a refusal (ErrConfig)", err)
	}

	if err := checkID(dir, 4); err != nil {
		t.Fatal(err)
	}
	if err := checkID(dir, 4); err != nil {
		t.Fatalf("same id again: %v", err)
	}
	if err := checkID(dir, 5); !errors.Is(err, ErrConfig) {
		t.Fatalf("another id: %v, want ErrConfig", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "osd_id"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkID(dir, 5); err != nil {
		t.Fatalf("an empty osd_id is written again: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "osd_id")); string(b) != "5\n" {
		t.Fatalf("osd_id holds %q", b)
	}
}
