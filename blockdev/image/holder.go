package image

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Holder describes the process that holds an image's lock. It is stored as
// the lock key's value, so that a refused opener can say who has it.
type Holder struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Address string    `json:"address,omitempty"` // where the holder serves the image (e.g. an NBD listener), if anywhere
	Program string    `json:"program,omitempty"` // e.g. "tsumiki nbd serve"
	Since   time.Time `json:"since"`
	// Boot is the holder's host's boot id (ThisBoot) when it took the
	// lock: after a reboot (a power cut) its PID may name another process.
	// Empty where unknown, and in locks of older versions.
	Boot string `json:"boot,omitempty"`
}

// ThisBoot returns this host's boot id (Linux's
// /proc/sys/kernel/random/boot_id, new at every boot), or "" where there
// is none.
func ThisBoot() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// String is "host h1 pid 42 (tsumiki nbd serve, at 10.0.0.1:10809) since
// 2026-01-02T15:04:05Z".
func (h Holder) String() string {
	var extra []string
	if h.Program != "" {
		extra = append(extra, h.Program)
	}
	if h.Address != "" {
		extra = append(extra, "at "+h.Address)
	}
	s := fmt.Sprintf("host %s pid %d", h.Host, h.PID)
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	if !h.Since.IsZero() {
		s += " since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// Same reports whether h and o describe the same holder: the same process
// of the same boot of a host, the same program and address (Since, which
// differs per lock, aside).
func (h Holder) Same(o Holder) bool {
	h.Since, o.Since = time.Time{}, time.Time{}
	return h == o
}

func decodeHolder(key string, value []byte) (Holder, error) {
	var h Holder
	if err := json.Unmarshal(value, &h); err != nil {
		return Holder{}, fmt.Errorf("%w: lock %s: %v; break the lock (tsumiki image rm --force) or remove it with etcdctl del", ErrCorrupt, key, err)
	}
	return h, nil
}
