package nbd_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the server at the edge of the data path: it
// imports no other tsumiki package and nothing heavy (house style #14).
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/tsumiki-storage/tsumiki/blockdev/nbd").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/tsumiki-storage/tsumiki/blockdev/nbd",
		"github.com/tsumiki-storage/tsumiki/internal/bufpool",
		"github.com/pojntfx/go-nbd/pkg/protocol",
		"go.uber.org/zap", "go.uber.org/multierr",
		"golang.org/x/sync/semaphore",
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(pkg, "/", 2)[0], ".") {
			continue // standard library
		}
		ok := false
		for _, a := range allowed {
			if pkg == a || strings.HasPrefix(pkg, a+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("blockdev/nbd depends on %s", pkg)
		}
	}
}
