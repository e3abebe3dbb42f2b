package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// sizeUnits are the suffixes parseSize accepts, binary (K = 1024).
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
	"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
	"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
	"P": 1 << 50, "PB": 1 << 50, "PIB": 1 << 50,
}

// parseSize reads a byte count: a whole number with an optional binary
// suffix K, M, G, T or P (also KiB, KB, ...; any case), e.g. 10G, 4M, 512.
// It refuses negatives, fractions, other text and overflow; 0 is allowed
// here (callers that need more say so).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size: give a number with an optional K, M, G or T suffix, e.g. 10G")
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q is negative", s)
	}
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if strings.HasPrefix(unit, ".") || strings.HasPrefix(unit, ",") {
		return 0, fmt.Errorf("size %q: use a whole number (e.g. 1536M instead of 1.5G)", s)
	}
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("size %q is not a number with an optional K, M, G or T suffix (e.g. 10G, 4M, 4096)", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// parseImageSize reads an image size for flag: more than 0, a multiple of
// 512, at most image.MaxSize.
func parseImageSize(flag, s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", flag, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s %s: an image needs a size above 0, e.g. %s 10G", flag, s, flag)
	}
	if err := image.CheckSize(n); err != nil {
		return 0, fmt.Errorf("%s %s: %w", flag, s, err)
	}
	return n, nil
}

// formatSize prints n bytes in binary units: "10 GiB", "1.5 MiB", "512 B".
func formatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u, v := 0, float64(n)
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[u]
}

// specAndSize parses a verb's POOL/NAME argument and its required --size
// flag (raw value size); example is a size to suggest when it is missing.
func specAndSize(cmd *cobra.Command, arg, size, verb, example string) (pool, name string, n int64, err error) {
	if pool, name, err = parseSpec(arg); err != nil {
		return "", "", 0, err
	}
	if !cmd.Flags().Changed("size") {
		return "", "", 0, fmt.Errorf("--size is required, e.g. tsumiki image %s %s --size %s", verb, arg, example)
	}
	n, err = parseImageSize("--size", size)
	return pool, name, n, err
}
