package main

import (
	"strings"
	"testing"
)

// TestImageParseSize: the size parser accepts whole numbers with binary
// suffixes and refuses everything else with a message that says why.
func TestImageParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // in the error, "" for success
	}{
		{"0", 0, ""},
		{"512", 512, ""},
		{"4K", 4 << 10, ""},
		{"4k", 4 << 10, ""},
		{"4KiB", 4 << 10, ""},
		{"4MB", 4 << 20, ""},
		{"10G", 10 << 30, ""},
		{" 2T ", 2 << 40, ""},
		{"1P", 1 << 50, ""},
		{"512B", 512, ""},
		{"", 0, "empty size"},
		{"-1G", 0, "negative"},
		{"1.5G", 0, "whole number"},
		{"ten", 0, "not a number"},
		{"10X", 0, "not a number"},
		{"G", 0, "not a number"},
		{"10 G B", 0, "not a number"},
		{"99999999999999999999", 0, "too large"},
		{"9000000P", 0, "too large"},
	} {
		got, err := parseSize(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseSize(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
}

// TestImageParseImageSize: image sizes must be above 0 and whole sectors.
func TestImageParseImageSize(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err string
	}{
		{"10G", ""},
		{"512", ""},
		{"0", "size above 0"},
		{"0G", "size above 0"},
		{"1000", "not a multiple of 512"},
		{"-5", "negative"},
		{"abc", "not a number"},
		{"2000P", "limit"},
	} {
		_, err := parseImageSize("--size", tc.in)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseImageSize(%q) = %v; want error %q", tc.in, err, tc.err)
		}
	}
}

func TestImageFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 512: "512 B", 4096: "4 KiB", 1536 << 10: "1.5 MiB", 10 << 30: "10 GiB", 1 << 60: "1 EiB"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestImageDataRuns: import writes only the blocks that hold data.
func TestImageDataRuns(t *testing.T) {
	p := make([]byte, 4*sparseBlock)
	p[10] = 1                // block 0
	p[sparseBlock+5] = 1     // block 1: merges with block 0
	p[3*sparseBlock+100] = 1 // block 3
	runs := dataRuns(p, 0)
	if len(runs) != 2 || runs[0].off != 0 || len(runs[0].p) != 2*sparseBlock || runs[1].off != 3*sparseBlock || len(runs[1].p) != sparseBlock {
		t.Fatalf("dataRuns = %v", runs)
	}
	// Unaligned start: blocks are aligned to image offsets.
	runs = dataRuns(p[:100], sparseBlock-50)
	if len(runs) != 1 || runs[0].off != sparseBlock-50 || len(runs[0].p) != 50 {
		t.Fatalf("dataRuns at an unaligned offset = %+v", runs)
	}
	if runs := dataRuns(make([]byte, 3*sparseBlock), 0); len(runs) != 0 {
		t.Fatalf("zeros gave runs %v", runs)
	}
}
