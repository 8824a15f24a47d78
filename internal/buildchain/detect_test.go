package buildchain

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadVersion: PyTorch 1.x and 2.8 define the version in
// torch/version.h; 2.9 and later include it from torch/headeronly/version.h.
func TestReadVersion(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) string {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("old/version.h", "#define TORCH_VERSION_MAJOR 1\n#define TORCH_VERSION_MINOR 13\n#define TORCH_VERSION_PATCH 1\n")
	if v, err := readVersion(old, filepath.Join(dir, "old/absent.h")); err != nil || v != "1.13.1" {
		t.Errorf("1.13 layout: %q, %v", v, err)
	}
	api := write("new/api/version.h", "#include <torch/headeronly/version.h>\n")
	ho := write("new/headeronly/version.h", "#define TORCH_VERSION_MAJOR 2\n\n#define TORCH_VERSION_MINOR 11\n\n#define TORCH_VERSION_PATCH 0\n")
	if v, err := readVersion(api, ho); err != nil || v != "2.11.0" {
		t.Errorf("2.11 layout: %q, %v", v, err)
	}
	if _, err := readVersion(api, filepath.Join(dir, "new/absent.h")); err == nil {
		t.Error("no version anywhere: no error")
	}
	if _, err := readVersion(filepath.Join(dir, "absent.h")); err == nil {
		t.Error("missing version.h: no error")
	}
}
