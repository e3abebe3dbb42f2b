package main

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tsumiki-storage/tsumiki/nfsgw"
)

func TestNFSConfigFile(t *testing.T) {
	fc, err := loadNFSConfig(filepath.Join("..", "..", "configs", "nfsgw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := nfsExports(fc.Exports, "/data")
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 || ex[0].Path != "/data" || ex[0].ReadOnly || !ex[1].ReadOnly || ex[0].AnonUID != 65534 || !ex[0].RootSquash {
		t.Fatalf("exports %+v", ex)
	}
	if !ex[0].Networks[0].Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("networks %v", ex[0].Networks)
	}
	if fc.Listen != ":2049" || fc.PortmapListen != ":111" {
		t.Fatalf("listen %q %q", fc.Listen, fc.PortmapListen)
	}
}

func TestNFSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		wantCfg    bool // the error wraps nfsgw.ErrConfig
	}{
		{"unknown key", "exports:\n  - path: /data\n    networks: [0.0.0.0/0]\n    rw: true\n", false},
		{"no networks", "exports:\n  - path: /data\n", true},
		{"relative path", "exports:\n  - path: data\n    networks: [0.0.0.0/0]\n", true},
		{"bad network", "exports:\n  - path: /data\n    networks: [nope]\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			fc, err := loadNFSConfig(p)
			if err == nil {
				_, err = nfsExports(fc.Exports, "/data")
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.wantCfg != errors.Is(err, nfsgw.ErrConfig) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

// TestNFSServeRefusals: bad flag combinations and a host that cannot
// attach images get a clear error, before anything is touched. This host
// has no nbd kernel module, so --image must say so (and name it).
func TestNFSServeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"neither", []string{"nfs", "serve"}, "exactly one of --dir"},
		{"both", []string{"nfs", "serve", "--dir", t.TempDir(), "--image", "rbd/x"}, "exactly one of --dir"},
		{"bad fs", []string{"nfs", "serve", "--image", "rbd/x", "--fs", "btrfs"}, "ext4 or xfs"},
		{"bad spec", []string{"nfs", "serve", "--image", "nopool"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(binPath, tc.args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("err %v, output:\n%s", err, out)
			}
		})
	}
	if _, err := os.Stat("/sys/module/nbd"); err == nil {
		t.Skip("this host has the nbd module; the refusal below cannot be checked")
	}
	out, err := exec.Command(binPath, "nfs", "serve", "--image", "rbd/x", "--listen", "127.0.0.1:0", "--portmap-listen", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nbd") {
		t.Fatalf("--image without the nbd module: err %v, output:\n%s", err, out)
	}
	t.Logf("refusal: %s", strings.TrimSpace(string(out)))
}
