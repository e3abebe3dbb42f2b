package main

import (
	"testing"
	"time"
)

func TestImageProgressRender(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		bytes       bool
		want        string
	}{
		{0, 10, false, "rm [..............................]   0% 0/10 objects 2s"},
		{5, 10, false, "rm [###############...............]  50% 5/10 objects 2s"},
		{10, 10, false, "rm [##############################] 100% 10/10 objects 2s"},
		{0, 0, false, "rm [##############################] 100% 0/0 objects 2s"},
		{1 << 20, 4 << 20, true, "rm [#######.......................]  25% 1 MiB/4 MiB 2s"},
	} {
		if got := renderBar("rm", tc.done, tc.total, tc.bytes, 2*time.Second); got != tc.want {
			t.Errorf("renderBar(%d, %d) =\n%q, want\n%q", tc.done, tc.total, got, tc.want)
		}
	}
}
