package hfconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocate(t *testing.T) {
	root := t.TempDir()
	base, adapter := filepath.Join(root, "models", "base"), filepath.Join(root, "runs", "sft", "final")
	for _, d := range []string{base, adapter} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(base, "config.json"), []byte(`{}`), 0o644)
	writeAdapter := func(baseRef string) {
		os.WriteFile(filepath.Join(adapter, "adapter_config.json"), []byte(`{"peft_type":"LORA","base_model_name_or_path":"`+baseRef+`"}`), 0o644)
	}
	for _, c := range []struct {
		name, dir, base, adapterBase string
		want                         Location
		err                          string
	}{
		{"model folder", base, "", "", Location{ModelDir: base}, ""},
		{"model folder with a base", base, base, "", Location{}, "only for a LoRA adapter folder"},
		{"absolute base", adapter, "", base, Location{ModelDir: base, AdapterDir: adapter}, ""},
		{"base relative to the adapter", adapter, "", "../../../models/base", Location{ModelDir: filepath.Join(adapter, "../../../models/base"), AdapterDir: adapter}, ""},
		{"given base wins", adapter, base, "nowhere", Location{ModelDir: base, AdapterDir: adapter}, ""},
		{"hub name", adapter, "", "meta-llama/Llama-3.1-8B", Location{}, `base model "meta-llama/Llama-3.1-8B" is not a local model folder`},
		{"no base named", adapter, "", "", Location{}, "names no base model"},
		{"given base without config", adapter, adapter, base, Location{}, "no config.json there"},
		{"neither", root, "", "", Location{}, "neither a model folder"},
		{"missing", filepath.Join(root, "none"), "", "", Location{}, "no such file"},
	} {
		writeAdapter(c.adapterBase)
		got, err := Locate(c.dir, c.base)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v; want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if !IsAdapterDir(adapter) || IsAdapterDir(base) {
		t.Error("IsAdapterDir")
	}
}
