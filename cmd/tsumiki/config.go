package main

import (
	"bytes"
	"fmt"
	"os"
	"reflect"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// loadConfig fills the fields of cfg (a pointer to a struct whose fields
// carry `yaml:"k"` and `flag:"f"` tags, already bound to flags) from the
// YAML file at path. A flag given on the command line wins over the file;
// the file wins over the flag's default. Unknown keys are errors.
func loadConfig(cmd *cobra.Command, path string, cfg any) error {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	v := reflect.ValueOf(cfg).Elem()
	file := reflect.New(v.Type())
	file.Elem().Set(v)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(file.Interface()); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("flag")
		if name != "" && cmd.Flags().Changed(name) {
			continue
		}
		v.Field(i).Set(file.Elem().Field(i))
	}
	return nil
}
