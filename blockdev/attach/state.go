package attach

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultStateDir is where mapped devices are recorded.
const DefaultStateDir = "/run/tsumiki/mapped"

// Record describes one mapped device and the process serving it.
type Record struct {
	Device   string    `json:"device"`
	Image    string    `json:"image"` // POOL/NAME
	ReadOnly bool      `json:"read_only"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
}

func recordPath(dir, dev string) string { return filepath.Join(dir, filepath.Base(dev)+".json") }

// Save writes r atomically into dir.
func Save(dir string, r Record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("attach: state dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := recordPath(dir, r.Device) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("attach: save state: %w", err)
	}
	return os.Rename(tmp, recordPath(dir, r.Device))
}

// Remove deletes dev's record; a missing one is not an error.
func Remove(dir, dev string) error {
	err := os.Remove(recordPath(dir, dev))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Load returns the records in dir whose process is alive and whose device
// is connected, sorted by device; stale records are deleted.
func Load(dir string) ([]Record, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) != nil || !alive(r.PID) || !Connected(r.Device) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
