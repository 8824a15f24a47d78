package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestOutsideModule is the path a Go developer takes: a module of their own
// that imports pltune runs pltune-setup, which writes that module's go.work,
// and then builds and runs a program training on libtorch through pltune.
func TestOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and links a libtorch program")
	}
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Clean(filepath.Join(filepath.Dir(self), "..", ".."))
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/mytuner\n\ngo 1.26\n\nrequire github.com/pltune/pltune v0.0.0\n\nreplace github.com/pltune/pltune => "+repo+"\n")
	write("main.go", `package main

import (
	"fmt"
	"os"

	"github.com/pltune/pltune/train"
)

func main() {
	cfg, err := train.ParseConfig([]byte(`+"`"+`{"architectures":["LlamaForCausalLM"],"vocab_size":64,"hidden_size":16,
		"intermediate_size":32,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32}`+"`"+`))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("parameters:", len(m.NamedParameters()))
}
`)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=", "GOFLAGS=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("go", "mod", "tidy")
	out := run("go", "run", filepath.Join(repo, "cmd", "pltune-setup"), "-no-install")
	if !strings.Contains(out, "go.work: "+filepath.Join(dir, "go.work")) {
		t.Fatalf("setup did not write the module's go.work:\n%s", out)
	}
	work, err := os.ReadFile(filepath.Join(dir, "go.work"))
	if err != nil || !strings.Contains(string(work), "github.com/sugarme/gotch v0.9.1 =>") {
		t.Fatalf("go.work lacks the gotch replace: %s (%v)", work, err)
	}
	if out := run("go", "run", "."); !strings.Contains(out, "parameters: ") {
		t.Fatalf("program output %q", out)
	}
}
