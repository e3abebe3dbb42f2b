package qemutest

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseExit(t *testing.T) {
	const nonce = "0123abcd"
	for _, tc := range []struct {
		name    string
		console string
		want    int
		ok      bool
	}{
		{"zero", "boot\nTSUMIKI-GUEST-EXIT 0123abcd 0\n[ 4.8] reboot: Power down\n", 0, true},
		{"non-zero", "TSUMIKI-GUEST-EXIT 0123abcd 42\n", 42, true},
		{"no newline at the end", "x\nTSUMIKI-GUEST-EXIT 0123abcd 3", 3, true},
		{"after a kernel message on the same line", "[ 3.1] nbd0: detached TSUMIKI-GUEST-EXIT 0123abcd 1\n", 1, true},
		{"the job fakes one with another nonce", "TSUMIKI-GUEST-EXIT ffff 0\nTSUMIKI-GUEST-EXIT 0123abcd 5\n", 5, true},
		{"last wins", "TSUMIKI-GUEST-EXIT 0123abcd 0\nTSUMIKI-GUEST-EXIT 0123abcd 9\n", 9, true},
		{"wrong nonce only", "TSUMIKI-GUEST-EXIT ffff 0\n", 0, false},
		{"no marker", "Kernel panic - not syncing: Attempted to kill init!\n", 0, false},
		{"status not a number", "TSUMIKI-GUEST-EXIT 0123abcd \n", 0, false},
		{"status out of range", "TSUMIKI-GUEST-EXIT 0123abcd 300\n", 0, false},
		{"trailing text", "TSUMIKI-GUEST-EXIT 0123abcd 0 more\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseExit(cleanConsole(strings.ReplaceAll(tc.console, "\n", "\r\n")), nonce)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseExit = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	} {
		if got := tail(tc.s, tc.n); got != tc.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// readCPIO parses a newc archive as the kernel does, failing on anything
// the kernel would not accept: a bad magic, a header or data that does not
// start 4-byte aligned (offsets relative to base), a missing trailer.
func readCPIO(t *testing.T, b []byte, base int) []cpioFile {
	t.Helper()
	var files []cpioFile
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if (base+off)%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", base+off)
		}
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", base+off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header at %d, field %d: %v", base+off, i, err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		off += 110 + namesize
		align()
		data := b[off : off+size]
		off += size
		align()
		if name == "TRAILER!!!" {
			return files
		}
		var d []byte
		if mode&0o170000 == modeReg {
			d = slices.Clone(data)
		}
		files = append(files, cpioFile{name: name, mode: uint32(mode), data: d})
	}
}

func TestWriteCPIO(t *testing.T) {
	files := []cpioFile{
		{name: "tsumiki", mode: modeDir | 0o755},
		{name: "tsumiki/job.sh", mode: modeReg | 0o755, data: []byte("echo hi\nexit 3\n")},
		{name: "tsumiki/nonce", mode: modeReg | 0o644, data: []byte("ab\n")},
		{name: "tsumiki/empty", mode: modeReg | 0o644, data: []byte{}},
		{name: "tsumiki/odd-name-length-x", mode: modeReg | 0o600, data: []byte("12345")},
	}
	if err := writeInitrd(t.TempDir()+"/x", "/nonexistent", files); err == nil {
		t.Fatal("writeInitrd with a missing base: no error")
	}
	for _, prefix := range []int{0, 1, 2, 3, 4, 513} {
		t.Run("after "+strconv.Itoa(prefix)+" bytes", func(t *testing.T) {
			dir := t.TempDir()
			base := dir + "/base"
			if err := os.WriteFile(base, bytes.Repeat([]byte{0x1f}, prefix), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := writeInitrd(dir+"/initrd", base, files); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(dir + "/initrd")
			if err != nil {
				t.Fatal(err)
			}
			start := (prefix + 3) &^ 3
			if !bytes.Equal(b[prefix:start], make([]byte, start-prefix)) {
				t.Fatalf("padding after the base is %x, want zeros", b[prefix:start])
			}
			got := readCPIO(t, b[start:], start)
			if len(got) != len(files) {
				t.Fatalf("read %d entries, want %d", len(got), len(files))
			}
			for i := range files {
				w, g := files[i], got[i]
				if g.name != w.name || g.mode != w.mode || !bytes.Equal(g.data, w.data) {
					t.Errorf("entry %d = %q %o %q, want %q %o %q", i, g.name, g.mode, g.data, w.name, w.mode, w.data)
				}
			}
		})
	}
}

func TestPlanAccel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		facts hostFacts
		want  accel
		probe bool
		err   bool
	}{
		{"no kvm", hostFacts{}, accelTCG, false, false},
		{"kvm", hostFacts{kvmUsable: true}, accelKVM, true, false},
		{"nested pvm", hostFacts{kvmUsable: true, pvm: true}, accelTCG, false, false},
		{"forced tcg", hostFacts{override: "tcg", kvmUsable: true}, accelTCG, false, false},
		{"forced kvm, no probe", hostFacts{override: "kvm", pvm: true}, accelKVM, false, false},
		{"bad override", hostFacts{override: "hvf"}, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planAccel(tc.facts)
			if tc.err {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("planAccel error = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil || p.accel != tc.want || p.probe != tc.probe || p.why == "" {
				t.Fatalf("planAccel = %+v, %v; want %s, probe %v, a reason", p, err, tc.want, tc.probe)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Script: "true"}, true},
		{"full", Config{Script: "true", Share: "/tmp", ExtraDisk: "/tmp/d", MemMiB: 512, CPUs: 2, Timeout: time.Minute}, true},
		{"log without disk", Config{Script: "true", ExtraDiskLog: "/tmp/l"}, false},
		{"disks", Config{Script: "true", ExtraDisk: "/d", Disks: []Disk{{Path: "/a", Serial: "osd0"}, {Path: "/b", Log: "/l", Serial: "osd-1"}}}, true},
		{"disk without path", Config{Script: "true", Disks: []Disk{{Serial: "osd0"}}}, false},
		{"disk without serial", Config{Script: "true", Disks: []Disk{{Path: "/a"}}}, false},
		{"disk serial with comma", Config{Script: "true", Disks: []Disk{{Path: "/a", Serial: "a,b"}}}, false},
		{"disk serial too long", Config{Script: "true", Disks: []Disk{{Path: "/a", Serial: strings.Repeat("x", 21)}}}, false},
		{"disk serial taken", Config{Script: "true", Disks: []Disk{{Path: "/a", Serial: "x"}, {Path: "/b", Serial: "x"}}}, false},
		{"disk serial of extra", Config{Script: "true", Disks: []Disk{{Path: "/a", Serial: "extra"}}}, false},
		{"no script", Config{}, false},
		{"too little memory", Config{Script: "true", MemMiB: 64}, false},
		{"negative cpus", Config{Script: "true", CPUs: -1}, false},
		{"negative timeout", Config{Script: "true", Timeout: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v, want ok=%v (or ErrConfig)", err, tc.ok)
			}
		})
	}
	d := Config{Script: "true"}.withDefaults()
	if d.MemMiB != defaultMemMiB || d.CPUs != defaultCPUs || d.Timeout != defaultTimeout {
		t.Fatalf("withDefaults = %+v", d)
	}
}

func TestQemuArgs(t *testing.T) {
	g := &Guest{Kernel: "/g/vmlinuz", Initramfs: "/g/initramfs.img", FioDisk: "/g/fio.ext4"}
	cfg := Config{Script: "true", Share: "/tmp/a,b", ExtraDisk: "/tmp/disk.img"}.withDefaults()

	tcg := strings.Join(qemuArgs(g, cfg, accelTCG, "/tmp/initrd"), " ")
	for _, want := range []string{
		"-machine q35 -accel tcg ", "-m 1024 ", "-smp 1 ", "-nographic", "-no-reboot",
		"-kernel /g/vmlinuz ", "-initrd /tmp/initrd ", "-append " + kernelArgs,
		"-netdev user,id=n,ipv6=off ", "virtio-net-pci,netdev=n",
		"file=/g/fio.ext4,format=raw,if=none,id=fio,readonly=on",
		"path=/tmp/a,,b", "mount_tag=host",
	} {
		if !strings.Contains(tcg, want) {
			t.Errorf("args lack %q:\n%s", want, tcg)
		}
	}
	if strings.Contains(tcg, "-cpu host") {
		t.Errorf("TCG args ask for -cpu host:\n%s", tcg)
	}
	if e, f := strings.Index(tcg, "id=extra"), strings.Index(tcg, "id=fio"); e < 0 || e > f {
		t.Errorf("the extra disk is not attached before the fio disk (so not /dev/vda):\n%s", tcg)
	}
	if kvm := strings.Join(qemuArgs(g, cfg, accelKVM, "/tmp/initrd"), " "); !strings.Contains(kvm, "-accel kvm -cpu host") {
		t.Errorf("KVM args: %s", kvm)
	}
	logged := strings.Join(qemuArgs(g, Config{Script: "true", ExtraDisk: "/d", ExtraDiskLog: "/l"}.withDefaults(), accelTCG, "/i"), " ")
	for _, want := range []string{"driver=file,node-name=extrafile,filename=/d ", "driver=file,node-name=extralog,filename=/l ",
		"driver=blklogwrites,node-name=extra,file=extrafile,log=extralog", "virtio-blk-pci,drive=extra,serial=extra"} {
		if !strings.Contains(logged, want) {
			t.Errorf("logged disk args lack %q:\n%s", want, logged)
		}
	}
	more := strings.Join(qemuArgs(g, Config{Script: "true", ExtraDisk: "/d", Disks: []Disk{{Path: "/a", Serial: "osd0"},
		{Path: "/b", Log: "/bl", Serial: "osd1"}}}.withDefaults(), accelTCG, "/i"), " ")
	e, a, b, f := strings.Index(more, "id=extra"), strings.Index(more, "id=osd0"), strings.Index(more, "node-name=osd1,"), strings.Index(more, "id=fio")
	if e < 0 || a < e || b < a || f < b {
		t.Errorf("disks not attached as extra, osd0, osd1, fio (vda, vdb, vdc, vdd):\n%s", more)
	}
	for _, want := range []string{"file=/a,format=raw,if=none,id=osd0 ", "virtio-blk-pci,drive=osd0,serial=osd0",
		"driver=blklogwrites,node-name=osd1,file=osd1file,log=osd1log", "node-name=osd1log,filename=/bl "} {
		if !strings.Contains(more, want) {
			t.Errorf("args with Disks lack %q:\n%s", want, more)
		}
	}
	bare := strings.Join(qemuArgs(g, Config{Script: "true"}.withDefaults(), accelTCG, "/tmp/initrd"), " ")
	if strings.Contains(bare, "9p") || strings.Contains(bare, "id=extra") {
		t.Errorf("args without Share or ExtraDisk: %s", bare)
	}
}
