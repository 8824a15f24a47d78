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

// missingDebianPackages returns the DebianPackages dpkg does not report as
// installed.
func missingDebianPackages(ctx context.Context) []string {
	var missing []string
	for _, p := range DebianPackages {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	return missing
}

// InstallDebian installs whichever of DebianPackages are missing with apt.
// It explains what to do instead when apt is missing or the process is not
// root.
func InstallDebian(ctx context.Context, log io.Writer) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("no libtorch found and apt-get is not available: install libtorch (C++ headers and libraries) and set LIBTORCH to its folder (holding lib/ and include/)")
	}
	missing := missingDebianPackages(ctx)
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
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
