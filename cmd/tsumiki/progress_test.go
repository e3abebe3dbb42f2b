package main

import (
	"testing"
	"time"
)

func TestProgressRender(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		unit        string
		want        string
	}{
		{0, 10, "objects", "rm [..............................]   0% 0/10 objects 2s"},
		{5, 10, "objects", "rm [###############...............]  50% 5/10 objects 2s"},
		{10, 10, "objects", "rm [##############################] 100% 10/10 objects 2s"},
		{0, 0, "pgs", "rm [##############################] 100% 0/0 pgs 2s"},
		{1 << 20, 4 << 20, unitBytes, "rm [#######.......................]  25% 1 MiB/4 MiB 2s"},
	} {
		if got := renderBar("rm", tc.done, tc.total, tc.unit, 2*time.Second); got != tc.want {
			t.Errorf("renderBar(%d, %d) =\n%q, want\n%q", tc.done, tc.total, got, tc.want)
		}
	}
}
