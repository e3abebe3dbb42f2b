package osd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The data directory's identity files: osd_uuid (made on first start, sent
// to the cluster map to get the OSD's id) and osd_id (that id, to refuse a
// store that moved to another cluster). They are written durably (file
// and directory synced): a power cut right after the first start once left
// every OSD with an empty osd_uuid (ext4 had committed the file's name but
// not its bytes), and no OSD would start again
// (TestClusterPowerLossFlushPoints).

// identity returns the device's UUID, creating it on first use.
func identity(dir string) (string, error) {
	path := filepath.Join(dir, "osd_uuid")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if u, herr := hex.DecodeString(id); herr != nil || len(u) != 16 {
			return "", fmt.Errorf("%w: %s holds %q, not a UUID (written by an older tsumiki that a power cut caught?); "+
				"put the OSD's uuid back in it (tsumiki osd ls -o json lists them) or give this OSD a new data directory",
				ErrConfig, path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var u [16]byte
	_, _ = rand.Read(u[:])
	id := hex.EncodeToString(u[:])
	if err := writeDurable(path, []byte(id+"\n")); err != nil {
		return "", err
	}
	// The data directory was made by this first start too (lockDir).
	if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return "", fmt.Errorf("sync the parent of %s: %w", dir, err)
	}
	return id, nil
}

// checkID records the OSD id in the data dir and refuses a mismatch (a
// store copied or a map restored from elsewhere).
func checkID(dir string, id int32) error {
	path := filepath.Join(dir, "osd_id")
	b, err := os.ReadFile(path)
	if err == nil {
		old, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr == nil && int32(old) != id {
			return fmt.Errorf("%w: %s belongs to osd.%d but the cluster map gave osd.%d to its uuid; is this the right cluster?", ErrConfig, dir, old, id)
		}
		if perr == nil {
			return nil
		}
		// Unreadable (a power cut before its bytes reached the disk, with
		// an older tsumiki): the uuid matched, so write it again.
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return writeDurable(path, []byte(strconv.Itoa(int(id))+"\n"))
}

// writeDurable replaces path with data and returns once both the bytes and
// the name are on disk: a temporary file, synced, renamed over path, and
// the directory synced.
func writeDurable(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
