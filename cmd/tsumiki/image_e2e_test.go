package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterImageLifecycle runs the image verbs against a real cluster (a
// mon and three OSD processes): create, ls, info, a sparse import and
// export that round-trip byte for byte and stay sparse, du, resize up and
// down, bench, rm; and a holder whose lock is broken by rm --force is
// fenced and fails.
func TestClusterImageLifecycle(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")

	c.mustCLI("image", "create", "data/empty", "--size", "64M", "--object-size", "1M")
	if out := c.mustCLI("image", "ls", "data"); out != "empty\n" {
		t.Fatalf("image ls data:\n%s", out)
	}
	if info := c.imageInfo("data/empty"); info.Size != 64<<20 || info.ObjectSize != 1<<20 || info.StripeCount != 1 || string(info.Lock) != "null" {
		t.Fatalf("image info: %+v", info)
	}

	// A sparse 20 MiB file: data at the start, in the middle (across an
	// object boundary) and at the very end.
	const size = 20 << 20
	in := sparseFile(t, c.dir, "b.in", size, map[int64]int{0: 100 << 10, 7<<20 - 5000: 10000, size - 4096: 4096}, 1)
	c.mustCLI("image", "import", in, "data/b", "--object-size", "1M")
	prov, used, objects := c.imageDu("data/b")
	if prov != size || objects != 4 || used >= size/2 {
		t.Fatalf("du after a sparse import: provisioned %d, used %d in %d objects; want %d provisioned, 4 objects, thin", prov, used, objects, size)
	}
	out := filepath.Join(c.dir, "b.out")
	c.mustCLI("image", "export", "data/b", out)
	sameFile(t, out, in)
	var st syscall.Stat_t
	if err := syscall.Stat(out, &st); err != nil || st.Blocks*512 > 2<<20 {
		t.Fatalf("export is not sparse: %d bytes allocated for %d bytes of data (%v)", st.Blocks*512, 100<<10+10000+4096, err)
	}
	stdout, _, err := c.cliFull(nil, "image", "export", "data/b", "-")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(in); stdout != string(want) {
		t.Fatal("export to stdout differs from the input")
	}

	// Striped layout, random data through stdin.
	rnd := make([]byte, 1<<20+512)
	for i := range rnd {
		rnd[i] = byte(i*131 + i>>9)
	}
	if _, _, err := c.cliFull(rnd, "image", "import", "-", "data/s", "--size", "2M", "--object-size", "64K", "--stripe-unit", "16K", "--stripe-count", "4"); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = c.cliFull(nil, "image", "export", "data/s", "-")
	if err != nil || !bytes.Equal([]byte(stdout[:len(rnd)]), rnd) || strings.Trim(stdout[len(rnd):], "\x00") != "" {
		t.Fatalf("striped image does not read back: %v", err)
	}

	// Grow: the old data stays and the new tail is zeros. Shrink: objects
	// past the end go, the rest reads back.
	c.mustCLI("image", "resize", "data/b", "--size", "40M")
	c.mustCLI("image", "export", "data/b", out+"2")
	grown, _ := os.ReadFile(out + "2")
	if want, _ := os.ReadFile(in); len(grown) != 40<<20 || !bytes.Equal(grown[:size], want) || strings.Trim(string(grown[size:]), "\x00") != "" {
		t.Fatal("grown image does not read the old data then zeros")
	}
	c.mustCLI("image", "resize", "data/b", "--size", "8M", "--allow-shrink")
	if _, _, objects := c.imageDu("data/b"); objects != 3 {
		t.Fatalf("%d objects after shrinking to 8 MiB, want 3 (0, and 6 and 7 around the 7 MiB write)", objects)
	}
	c.mustCLI("image", "export", "data/b", out+"3")
	shrunk, _ := os.ReadFile(out + "3")
	if want, _ := os.ReadFile(in); !bytes.Equal(shrunk, want[:8<<20]) {
		t.Fatal("shrunk image does not read back the first 8 MiB")
	}

	// Bench, both ways; JSON for scripts.
	for _, io := range []string{"write", "read"} {
		var res benchResult
		js := c.mustCLI("image", "bench", "data/empty", "--io-type", io, "--io-size", "4K", "--io-pattern", "rand",
			"--io-threads", "4", "--io-total", "256K", "-o", "json")
		if err := json.Unmarshal([]byte(js), &res); err != nil || res.Ops != 64 || res.IOPS <= 0 || res.P99ms < res.P50ms {
			t.Fatalf("bench %s: %+v, %v", io, res, err)
		}
	}

	// rm deletes the data objects too.
	id := c.imageInfo("data/b").ID
	c.mustCLI("image", "rm", "data/b")
	if out := c.mustCLI("object", "ls", "data", "--prefix", id); out != "" {
		t.Fatalf("objects of a removed image are left:\n%s", out)
	}
	if out := c.mustCLI("image", "ls"); out != "data/empty\ndata/s\n" {
		t.Fatalf("image ls after rm:\n%s", out)
	}

	// rm --force fences a live holder in another process: its next write
	// is refused and it exits with an error that says so.
	h := c.holdImage("data/held", "8M")
	start := time.Now()
	_, stderr, err := c.cliFull(nil, "image", "rm", "data/held", "--force")
	if err != nil || !strings.Contains(stderr, "broke the lock of") || time.Since(start) < 9*time.Second {
		t.Fatalf("rm --force: %v after %v; stderr %q; want the lock broken and its TTL waited out", err, time.Since(start), stderr)
	}
	if err := h.finish(t, bytes.Repeat([]byte{1}, 1<<20)); err == nil || !strings.Contains(h.stderr.String(), "lost the lock") {
		t.Fatalf("the fenced importer: %v, stderr %q; want a failure saying it lost the lock", err, h.stderr.String())
	}
	if out, _, err := c.cliFull(nil, "image", "info", "data/held"); err == nil {
		t.Fatalf("the removed image is back:\n%s", out)
	}
	verifyEventually(c, time.Minute)
}

// TestClusterImageBadInput: each bad image command is a clear refusal with
// a non-zero exit that says what to do, and touches no data.
func TestClusterImageBadInput(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.mustCLI("pool", "create", "data", "--size", "3", "--pg-num", "8")
	in := sparseFile(t, c.dir, "x.in", 8<<20, map[int64]int{0: 5000, 6 << 20: 5000}, 2)
	c.mustCLI("image", "import", in, "data/x", "--object-size", "1M")
	xInfo := c.imageInfo("data/x")
	h := c.holdImage("data/held", "4M")
	exists := filepath.Join(c.dir, "exists.out")
	if err := os.WriteFile(exists, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"image exists", []string{"image", "create", "data/x", "--size", "1G"}, "image data/x already exists: choose another name, or remove it first"},
		{"size 0", []string{"image", "create", "data/y", "--size", "0"}, "--size 0: an image needs a size above 0"},
		{"size not a number", []string{"image", "create", "data/y", "--size", "lots"}, `size "lots" is not a number`},
		{"size negative", []string{"image", "create", "data/y", "--size", "-1G"}, "is negative"},
		{"size fraction", []string{"image", "create", "data/y", "--size", "1.5G"}, "use a whole number"},
		{"size not sectors", []string{"image", "create", "data/y", "--size", "1000"}, "not a multiple of 512"},
		{"no size", []string{"image", "create", "data/y"}, "--size is required"},
		{"bad layout", []string{"image", "create", "data/y", "--size", "1G", "--object-size", "3M"}, "not a power of two"},
		{"no pool", []string{"image", "create", "nopool/y", "--size", "1G"}, `pool "nopool" does not exist`},
		{"no slash", []string{"image", "create", "y", "--size", "1G"}, "give the image as POOL/NAME"},
		{"shrink without --allow-shrink", []string{"image", "resize", "data/x", "--size", "4M"}, "pass --allow-shrink"},
		{"resize to 0", []string{"image", "resize", "data/x", "--size", "0"}, "an image needs a size above 0"},
		{"resize missing", []string{"image", "resize", "data/nope", "--size", "1G"}, "image data/nope does not exist"},
		{"rm locked", []string{"image", "rm", "data/held"}, "is in use: locked by host"},
		{"resize locked", []string{"image", "resize", "data/held", "--size", "8M"}, "(tsumiki image import)"},
		{"rm missing", []string{"image", "rm", "data/nope"}, "image data/nope does not exist (see `tsumiki image ls data`)"},
		{"info missing", []string{"image", "info", "data/nope"}, "does not exist"},
		{"import onto existing", []string{"image", "import", in, "data/x"}, "already exists"},
		{"import missing file", []string{"image", "import", filepath.Join(c.dir, "nope"), "data/y"}, "no such file"},
		{"import stdin without size", []string{"image", "import", "-", "data/y"}, "needs --size"},
		{"import larger than size", []string{"image", "import", in, "data/y", "--size", "1M"}, "more than --size"},
		{"export to existing file", []string{"image", "export", "data/x", exists}, "exists: remove it or export to another path"},
		{"export missing", []string{"image", "export", "data/nope", filepath.Join(c.dir, "nope.out")}, "does not exist"},
		{"bench bad type", []string{"image", "bench", "data/x", "--io-type", "erase"}, `--io-type "erase": use read or write`},
		{"bench bad size", []string{"image", "bench", "data/x", "--io-type", "read", "--io-size", "1000"}, "not a multiple of 512"},
		{"bench write on locked", []string{"image", "bench", "data/held", "--io-type", "write", "--io-total", "4K"}, "is in use"},
		{"ls missing pool", []string{"image", "ls", "nopool"}, `pool "nopool" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, stderr, err := c.cliFull(nil, tc.args...)
			if err == nil {
				t.Fatalf("tsumiki %s succeeded", strings.Join(tc.args, " "))
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("tsumiki %s: stderr %q does not say %q", strings.Join(tc.args, " "), stderr, tc.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("took %v to fail", d)
			}
		})
	}

	// Nothing was touched: the same images, x unchanged (same id and
	// size, same bytes), the holder still holds its lock and finishes its
	// import, and the file that was in the way is intact.
	if out := c.mustCLI("image", "ls"); out != "data/held\ndata/x\n" {
		t.Fatalf("images after bad input:\n%s", out)
	}
	if got := c.imageInfo("data/x"); got.ID != xInfo.ID || got.Size != xInfo.Size {
		t.Fatalf("data/x changed: %+v, was %+v", got, xInfo)
	}
	out := filepath.Join(c.dir, "x.out")
	c.mustCLI("image", "export", "data/x", out)
	sameFile(t, out, in)
	if b, _ := os.ReadFile(exists); string(b) != "keep me" {
		t.Fatal("a refused export overwrote the file in its way")
	}
	if err := h.finish(t, []byte(fmt.Sprintf("%01000d", 7))); err != nil {
		t.Fatalf("the lock holder failed after the refused commands: %v\n%s", err, h.stderr.String())
	}
	verifyEventually(c, time.Minute)
}
