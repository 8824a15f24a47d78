package buildchain

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// DebianPackages are what a machine without libtorch needs: Debian's
// libtorch and a threaded OpenBLAS (without it libtorch falls back to the
// reference BLAS, about 13 times slower on a training step).
var DebianPackages = []string{"libtorch-dev", "libopenblas0-pthread"}

// OptionalDebianPackages add features: gloo's headers, without which the
// data-parallel layer (train/dist) has no CPU backend. Their absence is
// reported, not an error, when they cannot be installed.
var OptionalDebianPackages = []string{"libgloo-dev"}

// missingDebianPackages returns the packages of list dpkg does not report
// as installed.
func missingDebianPackages(ctx context.Context, list []string) []string {
	var missing []string
	for _, p := range list {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	return missing
}

// InstallDebian installs whichever of DebianPackages and
// OptionalDebianPackages are missing with apt. It explains what to do
// instead when apt is missing or the process is not root; missing optional
// packages alone are only reported then.
func InstallDebian(ctx context.Context, log io.Writer) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("no libtorch found and apt-get is not available: install libtorch (C++ headers and libraries) and set LIBTORCH to its folder (holding lib/ and include/)")
	}
	required := missingDebianPackages(ctx, DebianPackages)
	missing := append(required, missingDebianPackages(ctx, OptionalDebianPackages)...)
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		if len(required) == 0 {
			fmt.Fprintf(log, "note: %s not installed (not root): data-parallel training will lack its CPU backend; `sudo apt-get install -y %s` adds it\n", strings.Join(missing, ", "), strings.Join(missing, " "))
			return nil
		}
		return fmt.Errorf("missing Debian packages %s and not running as root: run `sudo apt-get install -y %s`, or set LIBTORCH to a libtorch folder", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	fmt.Fprintf(log, "installing %s with apt-get (once per machine)\n", strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = log, log
		return cmd.Run()
	}
	if err := run(append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...); err != nil {
		// The package lists of a fresh machine may be missing or stale.
		if err := run("update", "-q"); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
		if err := run(append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...); err != nil {
			return fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
		}
	}
	return nil
}
