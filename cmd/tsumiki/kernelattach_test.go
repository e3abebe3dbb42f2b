package main

import (
	"os"
	"os/exec"
	"testing"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// TestHolderGone: a lock holder of this host is gone when its PID names no
// process, or when it took the lock in another boot of the host (after a
// power cut its PID may name another process).
func TestHolderGone(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := os.Getppid() // the go tool or the shell that runs the test
	for _, tc := range []struct {
		name string
		h    image.Holder
		gone bool
	}{
		{"live pid, this boot", image.Holder{Host: "h", PID: live, Boot: "b1"}, false},
		{"live pid, no boot recorded", image.Holder{Host: "h", PID: live}, false},
		{"live pid, another boot", image.Holder{Host: "h", PID: live, Boot: "b0"}, true},
		{"dead pid", image.Holder{Host: "h", PID: dead.Process.Pid, Boot: "b1"}, true},
		{"another host", image.Holder{Host: "g", PID: dead.Process.Pid, Boot: "b0"}, false},
		{"this process", image.Holder{Host: "h", PID: os.Getpid(), Boot: "b1"}, false},
		{"this PID, another boot", image.Holder{Host: "h", PID: os.Getpid(), Boot: "b0"}, true},
	} {
		if got := holderGone(tc.h, "h", "b1"); got != tc.gone {
			t.Errorf("%s: holderGone = %v, want %v", tc.name, got, tc.gone)
		}
	}
	if b := image.ThisBoot(); b == "" {
		t.Log("no boot id on this host (not Linux?): holders are told gone by PID only")
	}
}
