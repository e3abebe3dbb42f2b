package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// sparseFile writes a file of size bytes that is zero except for random
// data at each of the given offsets (len bytes each) and returns its path.
func sparseFile(t *testing.T, dir, name string, size int64, data map[int64]int, seed byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, n := range data {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7) ^ seed ^ byte(off>>12) | 1
		}
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// sameFile fails unless the two files have the same bytes.
func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(a), want, len(b))
	}
}

// imageInfo is the JSON of `image info`.
type imageInfo struct {
	ID          string          `json:"id"`
	Size        int64           `json:"size"`
	ObjectSize  int64           `json:"object_size"`
	StripeUnit  int64           `json:"stripe_unit"`
	StripeCount int64           `json:"stripe_count"`
	Lock        json.RawMessage `json:"lock"`
}

func (c *cluster) imageInfo(spec string) imageInfo {
	c.t.Helper()
	var info imageInfo
	if err := json.Unmarshal([]byte(c.mustCLI("image", "info", spec, "-o", "json")), &info); err != nil {
		c.t.Fatal(err)
	}
	return info
}

// imageDu is `image du SPEC -o json`'s one row.
func (c *cluster) imageDu(spec string) (provisioned, used int64, objects int) {
	c.t.Helper()
	var rows []struct {
		Provisioned, Used int64
		Objects           int
	}
	if err := json.Unmarshal([]byte(c.mustCLI("image", "du", spec, "-o", "json")), &rows); err != nil || len(rows) != 1 {
		c.t.Fatalf("image du %s: %v %+v", spec, err, rows)
	}
	return rows[0].Provisioned, rows[0].Used, rows[0].Objects
}

// holder is a `tsumiki image import - SPEC` process that holds the image's
// lock until its stdin is closed.
type holder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	done   chan error
}

// holdImage creates spec through an import from a pipe and waits until the
// importer holds the lock.
func (c *cluster) holdImage(spec, size string) *holder {
	c.t.Helper()
	h := &holder{cmd: exec.Command(binPath, "image", "import", "-", spec, "--size", size), done: make(chan error, 1)}
	h.cmd.Env = append(os.Environ(), "TSUMIKI_ETCD_ENDPOINTS="+c.etcd)
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		c.t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	c.t.Cleanup(func() {
		h.stdin.Close()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			h.cmd.Process.Kill()
		}
	})
	c.eventually(30*time.Second, "the importer holds the lock of "+spec, func() error {
		out, err := c.cli("image", "info", spec, "-o", "json")
		if err != nil {
			return err
		}
		var info imageInfo
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			return err
		}
		if string(info.Lock) == "null" {
			return context.DeadlineExceeded
		}
		return nil
	})
	return h
}

// finish writes data, closes stdin and returns the importer's exit error.
func (h *holder) finish(t *testing.T, data []byte) error {
	t.Helper()
	h.stdin.Write(data)
	h.stdin.Close()
	select {
	case err := <-h.done:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("the importer did not exit")
		return nil
	}
}
