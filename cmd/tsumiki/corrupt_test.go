package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// flipLast flips a byte inside the last occurrence of pattern in each object
// file under dir (not the raft log, which holds the bytes too) and returns
// how many it flipped. The daemon must be stopped.
func flipLast(t *testing.T, dir string, pattern []byte) int {
	t.Helper()
	flipped := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if !strings.Contains(path, string(filepath.Separator)+"objects"+string(filepath.Separator)) {
			return nil // only object data; the raft log holds the bytes too
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		i := bytes.LastIndex(b, pattern)
		if i < 0 {
			return nil
		}
		b[i+len(pattern)/2] ^= 0xff
		flipped++
		return os.WriteFile(path, b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
	return flipped
}

// TestClusterCorruptBlock is the proof 3: bytes flipped in one
// replica's store files (daemon stopped) are detected on read, the read is
// served from a good replica, and pg verify reports the damaged replica,
// also after a partial write into the damaged block.
func TestClusterCorruptBlock(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")

	// A distinctive 64 KiB pattern, so the test can find its bytes on disk.
	var want []byte
	for i := 0; len(want) < 64<<10; i++ {
		want = append(want, fmt.Sprintf("tsumiki-corruption-probe-%08d|", i)...)
	}
	want = want[:64<<10]
	in := filepath.Join(c.dir, "probe.in")
	if err := os.WriteFile(in, want, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "data", "probe", in)
	verifyEventually(c, time.Minute) // all replicas hold it before we damage one

	var om objectMap
	if err := json.Unmarshal([]byte(c.mustCLI("osd", "map", "data", "probe", "-o", "json")), &om); err != nil {
		t.Fatal(err)
	}
	victim := -1 // the process index of the replica we damage: the PG leader
	for i := range c.osds {
		if c.osdName(i) == osdName(om.Leader) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no leader for pg %s: %+v", om.PG, om)
	}
	c.osds[victim].stop(t)
	if n := flipLast(t, filepath.Join(c.dir, fmt.Sprintf("osd%d", victim), "store"), []byte("tsumiki-corruption-probe-00001000|")); n == 0 {
		t.Fatal("the probe's bytes were not found in the victim's store files")
	}
	c.osds[victim].start(t)
	c.waitUp(3)
	// Make the damaged replica the leader again, so the read meets the bad
	// block first.
	c.eventually(30*time.Second, "leadership back on the damaged replica", func() error {
		_, err := c.cli("pg", "lead", om.PG, osdName(om.Leader))
		return err
	})

	out := filepath.Join(c.dir, "probe.out")
	_, stderr, err := c.cliFull(nil, "object", "get", "data", "probe", out)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, want) {
		t.Fatalf("read returned %d bytes that differ from what was written", len(got))
	}
	if !strings.Contains(stderr, "corrupt") {
		t.Fatalf("the corrupt copy was not reported on the read; stderr:\n%s", stderr)
	}
	// pg verify notices the damaged replica and exits non-zero.
	vout, err := c.cli("pg", "verify", "--timeout", "5s")
	if err == nil {
		t.Fatalf("pg verify passed over a damaged replica:\n%s", vout)
	}
	if !strings.Contains(vout, "pg "+om.PG+" INCONSISTENT") || !strings.Contains(vout, osdName(om.Leader)) {
		t.Fatalf("pg verify does not name pg %s on %s:\n%s", om.PG, osdName(om.Leader), vout)
	}

	// A partial write into the damaged block: every replica applies it,
	// the damaged one included. It must neither stop that OSD (it did:
	// the read-modify-write failed its batch) nor launder the damage
	// under a fresh checksum: the block stays corrupt there, the object
	// reads right (from a good replica), and pg verify still names it.
	patch := []byte("PATCHED")
	patchOff := bytes.Index(want, []byte("tsumiki-corruption-probe-00001000|")) + 40
	copy(want[patchOff:], patch)
	pin := filepath.Join(c.dir, "patch.in")
	if err := os.WriteFile(pin, patch, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustCLI("object", "put", "data", "probe", pin, "--offset", fmt.Sprint(patchOff))
	c.eventually(20*time.Second, "the patch read back", func() error {
		if _, _, err := c.cliFull(nil, "object", "get", "data", "probe", out); err != nil {
			return err
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			return fmt.Errorf("the object reads back different from what was written")
		}
		return nil
	})
	time.Sleep(3 * time.Second) // the victim has applied it by now, or stopped over it
	if logb, _ := os.ReadFile(c.osds[victim].log); !c.osds[victim].running() || bytes.Contains(logb, []byte("store failed")) {
		t.Fatalf("%s stopped over a partial write into its damaged block; log:\n%s", c.osdName(victim), tail(c.osds[victim].log))
	}
	if vout, err := c.cli("pg", "verify", "--timeout", "5s"); err == nil || !strings.Contains(vout, osdName(om.Leader)) {
		t.Fatalf("after a partial write the damaged replica is no longer reported (laundered?); err %v:\n%s", err, vout)
	}
}
