package main

import (
	"context"
	"os"
	"testing"
)

// cliEnvVar makes the test binary act as the pltune command, so tests can
// start it as a child process (pltune launch's ranks).
const cliEnvVar = "PLTUNE_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnvVar) == "1" {
		os.Exit(run(context.Background(), &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
	}
	os.Exit(m.Run())
}
