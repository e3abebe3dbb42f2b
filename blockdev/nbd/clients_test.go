package nbd_test

// Tests against real NBD clients (TESTING.md): libnbd's nbdinfo, nbdcopy and
// nbdsh, qemu-img/qemu-io and fio. Each skips, naming the Debian package
// to install, when its client is missing.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

const clientTimeout = 60 * time.Second

func TestNbdinfo(t *testing.T) {
	needTool(t, "nbdinfo", "libnbd-bin")
	o := nbdtest.NewOpener()
	img := o.Add("pool/img", nbdtest.NewImage(64<<20))
	img.SetDescription("tsumiki test image")
	img.Fill(bytes.Repeat([]byte{0xab}, 1<<20), 8<<20) // 1 MiB of data at 8 MiB
	snap := o.Add("pool/img@snap", nbdtest.NewImage(16<<20))
	snap.SetReadOnly(true)
	s := startServer(t, o, nil)

	t.Run("json", func(t *testing.T) {
		var info struct {
			Protocol   string `json:"protocol"`
			Structured bool   `json:"structured"`
			Exports    []map[string]any
		}
		out := run(t, clientTimeout, nil, "nbdinfo", "--json", s.uri("pool/img"))
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("nbdinfo --json: %v\n%s", err, out)
		}
		if info.Protocol != "newstyle-fixed" || !info.Structured || len(info.Exports) != 1 {
			t.Fatalf("nbdinfo --json: %s", out)
		}
		e := info.Exports[0]
		want := map[string]any{
			"export-name":          "pool/img",
			"export-size":          float64(64 << 20),
			"is_read_only":         false,
			"can_flush":            true,
			"can_fua":              true,
			"can_trim":             true,
			"can_zero":             true,
			"can_multi_conn":       true,
			"can_df":               true,
			"can_cache":            false,
			"can_fast_zero":        false,
			"block_size_minimum":   float64(512),
			"block_size_preferred": float64(4096),
			"block_size_maximum":   float64(32 << 20),
			"description":          "tsumiki test image",
		}
		for k, v := range want {
			if e[k] != v {
				t.Errorf("nbdinfo %s = %v, want %v", k, e[k], v)
			}
		}
		if ctxs, _ := e["contexts"].([]any); len(ctxs) != 1 || ctxs[0] != "base:allocation" {
			t.Errorf("contexts = %v, want [base:allocation]", e["contexts"])
		}
	})

	t.Run("read-only", func(t *testing.T) {
		var info struct{ Exports []map[string]any }
		out := run(t, clientTimeout, nil, "nbdinfo", "--json", s.uri("pool/img@snap"))
		if err := json.Unmarshal(out, &info); err != nil || len(info.Exports) != 1 {
			t.Fatalf("nbdinfo --json: %v\n%s", err, out)
		}
		e := info.Exports[0]
		for k, v := range map[string]any{"is_read_only": true, "can_trim": false, "can_zero": false, "can_flush": true} {
			if e[k] != v {
				t.Errorf("nbdinfo %s = %v, want %v", k, e[k], v)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		out := string(run(t, clientTimeout, nil, "nbdinfo", "--list", "nbd://"+s.addr))
		for _, want := range []string{`export="pool/img":`, `export="pool/img@snap":`, "export-size: 16777216", "is_read_only: true"} {
			if !strings.Contains(out, want) {
				t.Errorf("nbdinfo --list lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("map", func(t *testing.T) {
		var extents []struct {
			Offset, Length int64
			Type           int
			Description    string
		}
		out := run(t, clientTimeout, nil, "nbdinfo", "--map", "--json", s.uri("pool/img"))
		if err := json.Unmarshal(out, &extents); err != nil {
			t.Fatalf("nbdinfo --map --json: %v\n%s", err, out)
		}
		type ext struct {
			off, n int64
			desc   string
		}
		want := []ext{{0, 8 << 20, "hole,zero"}, {8 << 20, 1 << 20, "data"}, {9 << 20, 55 << 20, "hole,zero"}}
		var got []ext
		for _, e := range extents {
			got = append(got, ext{e.Offset, e.Length, e.Description})
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("nbdinfo --map = %v, want %v", got, want)
		}
	})

	t.Run("unknown export", func(t *testing.T) {
		cmd := exec.Command("nbdinfo", s.uri("pool/nope"))
		out, err := cmd.CombinedOutput()
		// NBD_REP_ERR_UNKNOWN is shown by libnbd as ENOENT.
		if err == nil || !strings.Contains(string(out), "No such file or directory") || !strings.Contains(string(out), "pool/nope") {
			t.Errorf("nbdinfo of a missing export: err %v, output %s", err, out)
		}
	})
}

// writeSparseFile writes size bytes of random data to path, except for
// the holes, which are left unwritten (sparse).
func writeSparseFile(t testing.TB, path string, size int64, seed uint64, holes [][2]int64) []byte {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(data); j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	for _, h := range holes {
		clear(data[h[0] : h[0]+h[1]])
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	pos := int64(0)
	for _, h := range append(holes, [2]int64{size, 0}) {
		if _, err := f.WriteAt(data[pos:h[0]], pos); err != nil {
			t.Fatal(err)
		}
		pos = h[0] + h[1]
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

func sha(b []byte) string { s := sha256.Sum256(b); return fmt.Sprintf("%x", s) }

func TestNbdcopyRoundTrip(t *testing.T) {
	needTool(t, "nbdcopy", "libnbd-bin")
	const size = 128 << 20
	o := nbdtest.NewOpener()
	img := o.Add("pool/copy", nbdtest.NewImage(size))
	s := startServer(t, o, nil)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	hole := [2]int64{32 << 20, 16 << 20}
	data := writeSparseFile(t, src, size, 1, [][2]int64{hole})

	// In: several connections at once (nbdcopy uses multi-conn when offered).
	run(t, clientTimeout, nil, "nbdcopy", "--flush", src, s.uri("pool/copy"))
	if n := o.Opens(); n < 2 {
		t.Errorf("nbdcopy opened %d connection(s): CAN_MULTI_CONN not used", n)
	}
	if got := img.Contents(); sha(got) != sha(data) {
		t.Fatalf("image after nbdcopy in: sha256 %s, want %s", sha(got), sha(data))
	}
	if img.Flushes() == 0 {
		t.Errorf("nbdcopy --flush: Export.Flush never called")
	}
	if max := (size - hole[1]) / nbdtest.BlockSize; img.Allocated() > int(max) {
		t.Errorf("%d blocks allocated, want at most %d: the hole was written", img.Allocated(), max)
	}

	// Out.
	dst := filepath.Join(dir, "dst.img")
	run(t, clientTimeout, nil, "nbdcopy", s.uri("pool/copy"), dst)
	out, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if sha(out) != sha(data) {
		t.Fatalf("nbdcopy out: sha256 %s, want %s", sha(out), sha(data))
	}
}

func TestQemuImg(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	needTool(t, "qemu-io", "qemu-utils")
	const size = 64 << 20
	o := nbdtest.NewOpener()
	img := o.Add("pool/qemu", nbdtest.NewImage(size))
	s := startServer(t, o, nil)
	src := filepath.Join(t.TempDir(), "sparse.img")
	// Data only in [0, 1M), [20M, 21M) and [63M, 64M): the rest are holes.
	writeSparseFile(t, src, size, 2, [][2]int64{{1 << 20, 19 << 20}, {21 << 20, 42 << 20}})

	run(t, clientTimeout, nil, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, s.uri("pool/qemu"))
	out := run(t, clientTimeout, nil, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, s.uri("pool/qemu"))
	if !strings.Contains(string(out), "identical") {
		t.Errorf("qemu-img compare: %s", out)
	}
	if n := img.Allocated(); n > 3<<20/nbdtest.BlockSize {
		t.Errorf("%d blocks allocated after converting a sparse image with 3 MiB of data", n)
	}

	// compare must see a change made behind its back: it really reads us.
	img.Fill([]byte{0x5a}, 40<<20)
	cmd := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", src, s.uri("pool/qemu"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("qemu-img compare of different images: err %v, output %s", err, out)
	}

	out = run(t, clientTimeout, nil, "qemu-io", "-f", "raw",
		"-c", "write -P 0xab 0 1M", "-c", "write -z 1M 1M", "-c", "flush",
		"-c", "read -P 0xab 0 1M", "-c", "read -P 0 1M 1M", s.uri("pool/qemu"))
	if strings.Contains(string(out), "failed") {
		t.Errorf("qemu-io: %s", out)
	}
}

// pythonEnv puts the system python first: nbdsh runs `python3 -m nbd`, and
// the libnbd module is installed for Debian's python only.
func pythonEnv(extra ...string) []string {
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=/usr/bin:/bin:" + strings.TrimPrefix(kv, "PATH=")
		}
	}
	return append(env, extra...)
}

func TestNbdshCommands(t *testing.T) {
	needTool(t, "nbdsh", "libnbd-bin")
	if err := exec.Command("/usr/bin/env", append([]string{}, "PATH=/usr/bin:/bin", "python3", "-c", "import nbd")...).Run(); err != nil {
		t.Skipf("python module nbd not importable (%v): install it with `apt-get install -y python3-libnbd`", err)
	}
	const size = 64 << 20
	o := nbdtest.NewOpener()
	img := o.Add("pool/sh", nbdtest.NewImage(size))
	o.Add("pool/sh@ro", nbdtest.NewImage(size)).SetReadOnly(true)
	const readEIO, writeEIO, writeFull, writeENOSPC = 40 << 20, 41 << 20, 42 << 20, 43 << 20
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpRead, Off: readEIO, Len: 4096, Err: errors.New("disk on fire")})
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Off: writeEIO, Len: 4096, Err: errors.New("disk on fire")})
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Off: writeFull, Len: 4096, Err: nbd.ErrNoSpace})
	img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Off: writeENOSPC, Len: 4096, Err: syscall.ENOSPC})
	s := startServer(t, o, nil)

	script, err := filepath.Abs("testdata/nbdsh_commands.py")
	if err != nil {
		t.Fatal(err)
	}
	env := pythonEnv(
		"NBD_URI="+s.uri("pool/sh"), "NBD_RO_URI="+s.uri("pool/sh@ro"), "NBD_MISSING_URI="+s.uri("pool/missing"),
		"NBD_SIZE="+strconv.Itoa(size),
		"NBD_READ_EIO_OFF="+strconv.Itoa(readEIO), "NBD_WRITE_EIO_OFF="+strconv.Itoa(writeEIO),
		"NBD_WRITE_FULL_OFF="+strconv.Itoa(writeFull), "NBD_WRITE_ENOSPC_OFF="+strconv.Itoa(writeENOSPC),
	)
	out := run(t, clientTimeout, env, "nbdsh", "-n", "-c", fmt.Sprintf("exec(open(%q).read())", script))
	if !strings.Contains(string(out), "checks passed") {
		t.Fatalf("nbdsh script did not finish: %s", out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	if img.Flushes() == 0 {
		t.Errorf("Export.Flush never called")
	}
}

func TestFioVerify(t *testing.T) {
	needTool(t, "fio", "fio")
	if out, err := exec.Command("fio", "--enghelp=nbd").CombinedOutput(); err != nil || !strings.Contains(string(out), "uri") {
		t.Skipf("fio has no nbd engine (%v): install Debian's build with `apt-get install -y fio`", err)
	}
	o := nbdtest.NewOpener()
	img := o.Add("pool/fio", nbdtest.NewImage(64<<20))
	bad := o.Add("pool/bad", nbdtest.NewImage(16<<20))
	bad.Inject(nbdtest.Fault{Ops: nbdtest.OpRead, Off: 8 << 20, Len: 1, Corrupt: true})
	s := startServer(t, o, nil)
	fio := func(uri, size string) ([]byte, error) {
		cmd := exec.Command("fio", "--name=verify", "--ioengine=nbd", "--uri="+uri,
			"--rw=randwrite", "--bsrange=4k-1m", "--iodepth=32", "--size="+size,
			"--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=json")
		cmd.Dir = t.TempDir() // fio leaves state files in its working directory
		return cmd.CombinedOutput()
	}

	out, err := fio(s.uri("pool/fio"), "64M")
	if err != nil {
		t.Fatalf("fio: %v\n%s", err, out)
	}
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"read"`
			Write struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if i := bytes.IndexByte(out, '{'); i >= 0 {
		out = out[i:] // skip fio's "connected to NBD server" line
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) != 1 {
		t.Fatalf("fio json: %v\n%s", err, out)
	}
	j := res.Jobs[0]
	if j.Error != 0 || j.Write.IOBytes != 64<<20 || j.Read.IOBytes != 64<<20 {
		t.Errorf("fio: error %d, wrote %d, verified %d bytes; want 0, 64 MiB, 64 MiB", j.Error, j.Write.IOBytes, j.Read.IOBytes)
	}
	if img.Allocated() == 0 {
		t.Errorf("fio wrote nothing to the image")
	}

	// The same job must fail when the export returns a corrupt byte: the
	// verification above is real.
	if out, err := fio(s.uri("pool/bad"), "16M"); err == nil {
		t.Errorf("fio verify passed on an export that corrupts reads:\n%s", out)
	}
}
