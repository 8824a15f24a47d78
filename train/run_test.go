package train

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// TestHeldOutLossInEvalMode: with LoRA dropout on, the held-out loss the
// run reports is the loss without dropout, and the steps around it train
// with dropout.
func TestHeldOutLossInEvalMode(t *testing.T) {
	const vocab = 16
	m := tinyLlama(t, vocab)
	if err := ApplyLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.5}); err != nil {
		t.Fatal(err)
	}
	rows := countingRows(12, vocab, false)
	obj := NewLMObjective(m, rows[:8], 0)
	held := NewLMObjective(m, rows[8:], 0)
	cfg := DefaultTrainerConfig()
	cfg.OutDir, cfg.MaxSteps, cfg.EvalEvery, cfg.LR, cfg.WarmupRatio = t.TempDir(), 3, 1, 1e-2, -1
	cfg.NoFinalCheckpoint = true
	var checked int
	cfg.OnStep = func(r StepRecord) {
		if r.EvalLoss == nil {
			t.Fatalf("step %d: no held-out loss", r.Step)
		}
		// The run is back in training mode here: dropout changes the loss.
		withDropout, err := EvalLoss(held, 2)
		if err != nil {
			t.Fatal(err)
		}
		m.SetTraining(false)
		without, err := EvalLoss(held, 1)
		m.SetTraining(true)
		if err != nil {
			t.Fatal(err)
		}
		if *r.EvalLoss != without {
			t.Errorf("step %d: held-out loss %v, without dropout %v", r.Step, *r.EvalLoss, without)
		}
		if withDropout == without {
			t.Errorf("step %d: dropout 0.5 left the loss at %v: the test shows nothing", r.Step, without)
		}
		checked++
	}
	tr, err := NewTrainer(cfg, m.NamedParameters(), obj, held)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if checked != 3 {
		t.Errorf("%d steps checked, want 3", checked)
	}
	if m.train {
		t.Error("the model is still in training mode after Run")
	}
}

// TestZeroConfigTakesDefaults: TrainerConfig{OutDir} trains as
// DefaultTrainerConfig does (with the same seed).
func TestZeroConfigTakesDefaults(t *testing.T) {
	c := TrainerConfig{OutDir: "x"}
	c.EnsureDefaults()
	want := DefaultTrainerConfig()
	want.OutDir, want.Seed = "x", 0
	if !reflect.DeepEqual(c, want) {
		t.Errorf("EnsureDefaults gives\n%+v\nwant\n%+v", c, want)
	}
	def := DefaultTrainerConfig()
	for _, x := range []struct {
		name string
		got  any
		want any
	}{{"Epochs", def.Epochs, 3}, {"BatchSize", def.BatchSize, 1}, {"GradAccum", def.GradAccum, 1}, {"LR", def.LR, 1e-5},
		{"WarmupRatio", def.WarmupRatio, 0.03}, {"MaxGradNorm", def.MaxGradNorm, 1.0}, {"KeepLast", def.KeepLast, 2},
		{"LogEvery", def.LogEvery, 10}, {"AdamW", def.AdamW, DefaultAdamW()}, {"Seed", def.Seed, int64(42)}} {
		if x.got != x.want {
			t.Errorf("DefaultTrainerConfig().%s = %v, documented %v", x.name, x.got, x.want)
		}
	}
	b := newBigram(t, 12)
	zero := TrainerConfig{OutDir: t.TempDir(), Seed: 42, LR: 0.05}
	runBigram(t, zero, b)
	got := weights(b)
	b2 := newBigram(t, 12)
	full := DefaultTrainerConfig()
	full.OutDir, full.LR = t.TempDir(), 0.05
	runBigram(t, full, b2)
	if !slices.Equal(got, weights(b2)) {
		t.Error("a zero TrainerConfig trains other weights than DefaultTrainerConfig")
	}
	if steps := readSteps(t, filepath.Join(zero.OutDir, "metrics.jsonl")); len(steps) != 3*12 {
		t.Errorf("zero config ran %d steps, want 3 epochs of 12", len(steps))
	}
}

// TestProgressNilDrawsNoBar: a nil Progress stays nil (no bar, whatever
// standard error is); a writer gets the bar.
func TestProgressNilDrawsNoBar(t *testing.T) {
	tr, err := NewTrainer(TrainerConfig{OutDir: t.TempDir()}, nil, newBigram(t, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.cfg.Progress != nil {
		t.Errorf("Progress nil became %v", tr.cfg.Progress)
	}
	var bar bytes.Buffer
	cfg := testConfig(t.TempDir())
	cfg.Progress = &bar
	runBigram(t, cfg, newBigram(t, 6))
	if !strings.Contains(bar.String(), "loss") {
		t.Errorf("Progress got no bar: %q", bar.String())
	}
}

// liveTensors counts the libtorch tensors gotch has not freed.
func liveTensors() int { return len(ts.ExistingTensors) }

// TestRunFreesOptimizerState: once Run returns, the tensors it made
// (AdamW's moments, gradient sums) are freed, not left to the collector.
func TestRunFreesOptimizerState(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no finalizer frees anything meanwhile
	for _, stage := range []int{0, 1, 2} {
		b := newBigram(t, 8)
		cfg := testConfig(t.TempDir())
		cfg.Epochs, cfg.ZeroStage = 1, stage
		tr, err := NewTrainer(cfg, b.params(), b, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := liveTensors()
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if after := liveTensors(); after > before {
			t.Errorf("ZeroStage %d: %d tensors live after Run, %d before", stage, after, before)
		}
	}
	opt, err := NewAdamW(newBigram(t, 1).params(), DefaultAdamW())
	if err != nil {
		t.Fatal(err)
	}
	opt.Drop()
	if opt.m[0] != nil || opt.v[0] != nil {
		t.Error("AdamW.Drop left its moments")
	}
}

// fatalBigram fails like gotch does on a libtorch error (a Must* call
// with a bad shape: log.Fatal) in the Loss call number failAt.
type fatalBigram struct {
	*bigram
	failAt int
}

func (b *fatalBigram) Loss(idx []int) (*Loss, error) {
	if b.call+1 == b.failAt {
		b.call++
		x := ts.MustOfSlice([]float32{1, 2, 3})
		defer x.MustDrop()
		x.MustView([]int64{2, 2}, false) // log.Fatal: shape '[2, 2]' is invalid for input of size 3
	}
	return b.bigram.Loss(idx)
}

// TestLibtorchErrorCheckpoints: a libtorch failure inside step 4 becomes
// an error naming the step, after a checkpoint of step 3 that resumes to
// the uninterrupted run's weights.
func TestLibtorchErrorCheckpoints(t *testing.T) {
	ref := newBigram(t, 8)
	cfg := testConfig(t.TempDir())
	cfg.MaxSteps = 6
	runBigram(t, cfg, ref)

	b := &fatalBigram{bigram: newBigram(t, 8), failAt: 4}
	cfg.OutDir = t.TempDir()
	tr, err := NewTrainer(cfg, b.params(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.Run(context.Background())
	var lt *LibtorchError
	if !errors.As(err, &lt) || !strings.Contains(err.Error(), "step 4") || !strings.Contains(lt.Msg, "invalid for input of size 3") || strings.Contains(lt.Msg, "goroutine") {
		t.Fatalf("Run returned %v, want a LibtorchError at step 4", err)
	}
	if _, serr := os.Stat(filepath.Join(cfg.OutDir, "checkpoint-3", stateFile)); serr != nil {
		t.Fatalf("no checkpoint of step 3: %v (error %v)", serr, err)
	}
	cfg.Resume = true
	s := runBigram(t, cfg, b.bigram)
	if s.Steps != 6 {
		t.Errorf("resumed run ended at step %d", s.Steps)
	}
	if !slices.Equal(weights(ref), weights(b.bigram)) {
		t.Error("resumed weights differ from the uninterrupted run's")
	}
}

// TestRecorderStops: a recorder that returns ErrStop ends the run after
// that step, cleanly, with its checkpoint and final export.
func TestRecorderStops(t *testing.T) {
	b := newBigram(t, 8)
	cfg := testConfig(t.TempDir())
	var inits []RunInfo
	cfg.Recorders = []Recorder{stopAt{step: 2, inits: &inits}}
	cfg.Export = func(dir string) error { return os.WriteFile(filepath.Join(dir, "model"), nil, 0o644) }
	s := runBigram(t, cfg, b)
	if !s.Stopped || s.Steps != 2 {
		t.Errorf("summary %+v, want stopped after step 2", s)
	}
	if s.Checkpoint != filepath.Join(cfg.OutDir, "checkpoint-2") || s.Final == "" {
		t.Errorf("checkpoint %q, final %q", s.Checkpoint, s.Final)
	}
	if got := readSteps(t, filepath.Join(cfg.OutDir, "metrics.jsonl")); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("metrics.jsonl has steps %v", got)
	}
	if len(inits) != 1 || inits[0].TotalSteps != 16 || inits[0].World != 1 {
		t.Errorf("Init saw %+v", inits)
	}
}

type stopAt struct {
	step  int
	inits *[]RunInfo
}

func (s stopAt) Init(i RunInfo) error { *s.inits = append(*s.inits, i); return nil }

func (s stopAt) Record(r StepRecord) error {
	if r.Step == s.step {
		return ErrStop
	}
	return nil
}

// TestLibtorchErrorOutsideTheStep: a libtorch error after the backward
// pass (here in a recorder) ends Run with an error, not the process.
func TestLibtorchErrorOutsideTheStep(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.OnStep = func(r StepRecord) {
		if r.Step == 2 {
			x := ts.MustOfSlice([]float32{1, 2, 3})
			defer x.MustDrop()
			x.MustView([]int64{2, 2}, false)
		}
	}
	b := newBigram(t, 8)
	tr, err := NewTrainer(cfg, b.params(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.Run(context.Background())
	var lt *LibtorchError
	if !errors.As(err, &lt) || !strings.Contains(err.Error(), "after step 2") {
		t.Errorf("Run returned %v, want a LibtorchError after step 2", err)
	}
}
