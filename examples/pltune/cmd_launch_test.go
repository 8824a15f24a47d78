package main

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
	"time"
)

func runLaunchCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code = run(ctx, env, append([]string{"launch"}, args...))
	return code, out.String(), errb.String()
}

func TestLaunchUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "usage: pltune launch"},
		{[]string{"--nproc-per-node", "2"}, 2, "no COMMAND"},
		{[]string{"--nproc-per-node", "0", "--", "true"}, 2, "--nproc-per-node 0"},
		{[]string{"--nnodes", "2", "--node-rank", "2", "--", "true"}, 2, "--node-rank 2: want 0 to 1"},
		{[]string{"--master-port", "70000", "--", "true"}, 2, "--master-port 70000"},
		{[]string{"--bogus", "--", "true"}, 2, "flag provided but not defined"},
		{[]string{"--", "/nonexistent/pltune-worker"}, 1, "starting rank 0"},
	} {
		code, out, errOut := runLaunchCLI(context.Background(), c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("launch %v: exit %d, output %q %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
		if c.code == 2 && strings.Count(errOut, "\n") != 1 {
			t.Errorf("launch %v: usage error is not one line: %q", c.args, errOut)
		}
	}
}

// TestLaunchEnvironment: every rank gets torchrun's variables, and its
// output lines carry its rank.
func TestLaunchEnvironment(t *testing.T) {
	code, out, errOut := runLaunchCLI(context.Background(), "--nproc-per-node", "3", "--nnodes", "2", "--node-rank", "1",
		"--master-addr", "10.1.2.3", "--master-port", "29555", "--",
		"sh", "-c", `echo "$RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT $LOCAL_WORLD_SIZE $GROUP_RANK"; echo err >&2; printf partial`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(lines)
	want := []string{
		"[rank3]: 3 0 6 10.1.2.3 29555 3 1", "[rank3]: partial",
		"[rank4]: 4 1 6 10.1.2.3 29555 3 1", "[rank4]: partial",
		"[rank5]: 5 2 6 10.1.2.3 29555 3 1", "[rank5]: partial",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stdout:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range []string{"[rank3]: err", "[rank4]: err", "[rank5]: err"} {
		if !strings.Contains(errOut, r) {
			t.Errorf("stderr lacks %q: %s", r, errOut)
		}
	}
}

// TestLaunchFailureStopsOthers: when one rank exits non-zero the others are
// terminated at once and launch exits 1 naming the rank.
func TestLaunchFailureStopsOthers(t *testing.T) {
	start := time.Now()
	code, out, errOut := runLaunchCLI(context.Background(), "--nproc-per-node", "3", "--",
		"sh", "-c", `trap 'echo terminated; exit 143' TERM; if [ "$RANK" = 1 ]; then sleep 0.5; exit 3; fi; sleep 60 & wait`)
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("launch took %v: the other ranks were not stopped", took)
	}
	if code != 1 || !strings.Contains(errOut, "rank 1 exited with status 3") {
		t.Fatalf("exit %d, stderr %q; want 1 naming rank 1", code, errOut)
	}
	for _, r := range []string{"[rank0]: terminated", "[rank2]: terminated"} {
		if !strings.Contains(out, r) {
			t.Errorf("stdout lacks %q (SIGTERM not delivered?): %s", r, out)
		}
	}
}

// TestLaunchForwardsStop: stopping the launcher (its context, as on
// SIGINT/SIGTERM) terminates every rank, and one that ignores SIGTERM is
// killed after --grace.
func TestLaunchForwardsStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	code, out, errOut := runLaunchCLI(ctx, "--nproc-per-node", "2", "--grace", "2s", "--",
		"sh", "-c", `if [ "$RANK" = 0 ]; then trap 'echo got TERM; exit 0' TERM; else trap '' TERM; fi; echo up; sleep 60 & wait; sleep 60`)
	took := time.Since(start)
	if code != 1 || !strings.Contains(out, "[rank0]: got TERM") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "killing them") || took > 15*time.Second {
		t.Fatalf("rank 1 ignores SIGTERM: want it killed after the 2s grace; took %v, stderr %q", took, errOut)
	}
}
