package dist_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/dist"
	"github.com/sugarme/gotch/ts"
)

// failingToy is rank 1's objective in a FailAt job: its Loss call number
// at fails, with an error or with a libtorch error (a Must* call on a bad
// shape, which gotch reports by log.Fatal).
type failingToy struct {
	*toy
	at, call int
	fatal    bool
}

func (f *failingToy) Loss(idx []int) (*train.Loss, error) {
	if f.call++; f.call == f.at {
		if f.fatal {
			x := ts.MustOfSlice([]float32{1, 2, 3})
			x.MustView([]int64{2, 2}, true)
		}
		return nil, errors.New("the objective failed")
	}
	return f.toy.Loss(idx)
}

// TestFailingRankEndsTheGroup: when rank 1's step fails inside Run (its
// objective's error, a libtorch error), rank 0 — blocked in the step's
// gradient all-reduce — fails within seconds, not after the group's
// timeout, and rank 0 keeps its checkpoint of the last completed step.
func TestFailingRankEndsTheGroup(t *testing.T) {
	for _, fatal := range []bool{false, true} {
		name := "error"
		if fatal {
			name = "libtorch"
		}
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			ranks := spawn(t, 2, job{Mode: "train", Batch: 2, Accum: 1, Out: out, Result: filepath.Join(out, "w"), FailAt: 3, FailFatal: fatal}, "120s")
			start := time.Now()
			done := make(chan error, 2)
			for _, rk := range ranks {
				go func() {
					io.Copy(io.Discard, rk.stdout)
					done <- rk.cmd.Wait()
				}()
			}
			for range ranks {
				select {
				case err := <-done:
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ExitCode() == 0 {
						t.Errorf("a rank ended with %v, want a non-zero exit", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("a rank still runs 30s after rank 1 failed (the group's timeout is 120s)\nrank 0: %s\nrank 1: %s", ranks[0].stderr.String(), ranks[1].stderr.String())
				}
			}
			took := time.Since(start)
			if !strings.Contains(ranks[1].stderr.String(), "step 3") {
				t.Errorf("rank 1's error does not name the step: %s", ranks[1].stderr.String())
			}
			if _, err := os.Stat(filepath.Join(out, "checkpoint-2", "trainer_state.json")); err != nil {
				t.Errorf("no checkpoint of step 2: %v\nrank 0: %s", err, ranks[0].stderr.String())
			}
			t.Logf("group ended %v after the start\nrank 0: %s\nrank 1: %s", took.Round(time.Millisecond), strings.TrimSpace(ranks[0].stderr.String()), strings.TrimSpace(ranks[1].stderr.String()))
		})
	}
}

// TestStoppedRankLeavesABlockedCollective: a rank told to stop (SIGTERM,
// as pltune launch and torchrun send when a peer fails) while its
// collective waits on a peer that will never come (stopped) exits within
// the stop grace, not after the group's timeout.
func TestStoppedRankLeavesABlockedCollective(t *testing.T) {
	ranks := spawn(t, 2, job{Mode: "hold"}, "120s")
	for r, rk := range ranks {
		sc := bufio.NewScanner(rk.stdout)
		if !sc.Scan() || sc.Text() != "ready" {
			rk.cmd.Wait()
			t.Fatalf("rank %d did not join: %s", r, rk.stderr.String())
		}
		go io.Copy(io.Discard, rk.stdout)
	}
	if err := ranks[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer ranks[1].cmd.Process.Kill()
	time.Sleep(300 * time.Millisecond) // rank 0 is now blocked in its all-reduce
	start := time.Now()
	if err := ranks[0].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ranks[0].cmd.Wait() }()
	select {
	case err := <-done:
		took := time.Since(start)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("rank 0 ended with %v, want a non-zero exit", err)
		}
		if msg := ranks[0].stderr.String(); !strings.Contains(msg, "told to stop") {
			t.Errorf("rank 0 does not say why it exited: %s", msg)
		}
		if took < dist.DefaultStopGrace {
			t.Errorf("rank 0 exited %v after SIGTERM, before the %v grace", took, dist.DefaultStopGrace)
		}
		t.Logf("rank 0 exited %v after SIGTERM: %s", took.Round(time.Millisecond), strings.TrimSpace(ranks[0].stderr.String()))
	case <-time.After(dist.DefaultStopGrace + 10*time.Second):
		t.Fatalf("rank 0 still blocked %v after SIGTERM (group timeout 120s)", dist.DefaultStopGrace+10*time.Second)
	}
}
