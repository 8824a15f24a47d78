//go:build !pltune_torch

package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes pltune-torch get SIGKILL should this pltune die
// without passing a signal on (killed by pltune launch or an OOM killer),
// so no training process is left running alone.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
