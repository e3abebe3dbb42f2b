package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestConfigFilesMatchFlags loads every example in configs/ strictly into
// its command's config struct (unknown keys are errors) and checks that
// every struct field is documented in the file and bound to a flag.
func TestConfigFilesMatchFlags(t *testing.T) {
	g := &globals{}
	for _, tc := range []struct {
		file string
		cmd  *cobra.Command
		cfg  any
	}{
		{"mon.yaml", newMonCmd(g), &monConfig{}},
		{"osd.yaml", newOSDCmd(g), &osdConfig{}},
		{"up.yaml", newUpCmd(g), &upConfig{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "configs", tc.file)
			if err := loadConfig(tc.cmd, path, tc.cfg); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			typ := reflect.TypeOf(tc.cfg).Elem()
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				key, flag := f.Tag.Get("yaml"), f.Tag.Get("flag")
				if !strings.Contains(string(raw), key+":") {
					t.Errorf("%s does not document key %q", tc.file, key)
				}
				if tc.cmd.Flags().Lookup(flag) == nil {
					t.Errorf("field %s: no flag --%s", f.Name, flag)
				}
			}
		})
	}
}
