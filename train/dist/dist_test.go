package dist_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/dist"
	"github.com/sugarme/gotch/ts"
)

// The multi-process tests re-execute this test binary as the group's
// ranks; workerEnv carries the worker's job as JSON.
const workerEnv = "PLTUNE_DIST_TEST_WORKER"

type job struct {
	Mode       string // "train", "sum" or "hold"
	Batch      int
	Accum      int
	Out        string // the run's OutDir
	Result     string // weights are written to Result-rank<r>.json
	CancelAt   int    // rank CancelRank stops after this step (0: never)
	CancelRank int
	Resume     bool
	// ZeRO jobs (mode "zero"): stage, objective ("lm" or "orpo"), LoRA.
	Zero    int
	Obj     string
	LoRA    bool
	Offload bool
	DieAt   int    // rank 1 exits abruptly at this call of Loss (0: never)
	Load    string // ZeRO-3: the ranks load this folder with train.LoadModelSharded
	// FailAt: rank 1's Loss fails at this call (0: never), with an error
	// or, with FailFatal, a libtorch error.
	FailAt    int
	FailFatal bool
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		if err := worker(spec); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func worker(spec string) error {
	var j job
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		return err
	}
	torchx.SetNumThreads(1) // the ranks share the machine's cores
	// SIGTERM cancels, as in the pltune CLI (the stop watchdog's test).
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(sigCtx)
	defer cancel()
	// Tiny buckets, so a step takes several collectives.
	g, err := dist.Init(ctx, dist.Options{Backend: "gloo", BucketBytes: 64})
	if err != nil {
		return err
	}
	defer g.Close()
	switch j.Mode {
	case "llama":
		// Each rank starts from different weights: the broadcast at the
		// start must make them rank 0's.
		m, obj, err := tinyLlama(int64(1 + g.Rank()))
		if err != nil {
			return err
		}
		cfg := toyConfig(j.Out, j.Batch, j.Accum)
		cfg.LR = 1e-3
		cfg.Epochs = 3
		cfg.Comm = g
		cfg.Resume = j.Resume
		tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, nil)
		if err != nil {
			return err
		}
		if _, err := tr.Run(ctx); err != nil {
			return err
		}
		b, _ := json.Marshal(llamaWeights(m))
		return os.WriteFile(fmt.Sprintf("%s-rank%d.json", j.Result, g.Rank()), b, 0o644)
	case "zero":
		return zeroWorker(ctx, cancel, g, j)
	case "sum":
		x := ts.MustOfSlice([]float64{float64(g.Rank() + 1)})
		if err := g.AllReduceSum([]*ts.Tensor{x}); err != nil {
			return err
		}
		fmt.Printf("rank %d of %d: sum %g\n", g.Rank(), g.Size(), x.Float64Values()[0])
		return nil
	case "hold":
		x := ts.MustOfSlice([]float32{1, 2, 3})
		for i := 0; ; i++ {
			if err := g.AllReduceSum([]*ts.Tensor{x}); err != nil {
				return err
			}
			if i == 0 {
				fmt.Println("ready")
			}
			time.Sleep(50 * time.Millisecond)
		}
	case "train":
		m := newToy(24)
		cfg := toyConfig(j.Out, j.Batch, j.Accum)
		cfg.Comm = g
		cfg.Resume = j.Resume
		if j.CancelAt > 0 && g.Rank() == j.CancelRank {
			cfg.OnStep = func(r train.StepRecord) {
				if r.Step == j.CancelAt {
					cancel()
				}
			}
		}
		var obj train.Objective = m
		if j.FailAt > 0 && g.Rank() == 1 {
			obj = &failingToy{toy: m, at: j.FailAt, fatal: j.FailFatal}
		}
		tr, err := train.NewTrainer(cfg, m.params(), obj, nil)
		if err != nil {
			return err
		}
		if _, err := tr.Run(ctx); err != nil && !(j.CancelAt > 0 && errors.Is(err, context.Canceled)) {
			return err
		}
		b, _ := json.Marshal(m.weights())
		return os.WriteFile(fmt.Sprintf("%s-rank%d.json", j.Result, g.Rank()), b, 0o644)
	}
	return fmt.Errorf("unknown mode %q", j.Mode)
}

// toy is a bigram language model with a bias, so a step all-reduces two
// gradients of different shapes. Its examples have different lengths, so
// the loss normalisation by tokens over all ranks matters.
type toy struct {
	w, b *ts.Tensor
	seqs [][]int64
}

const toyV = 7

func newToy(n int) *toy {
	w := make([]float32, toyV*toyV)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)*1.3)) * 0.1
	}
	b := make([]float32, toyV)
	for i := range b {
		b[i] = float32(math.Cos(float64(i))) * 0.05
	}
	m := &toy{
		w: ts.MustOfSlice(w).MustView([]int64{toyV, toyV}, true).MustSetRequiresGrad(true, true),
		b: ts.MustOfSlice(b).MustSetRequiresGrad(true, true),
	}
	for i := range n {
		s := make([]int64, 3+i%5)
		for j := range s {
			s[j] = int64((i*3 + j*j) % toyV)
		}
		m.seqs = append(m.seqs, s)
	}
	return m
}

func (m *toy) params() []train.Param {
	return []train.Param{{Name: "w", T: m.w, Trainable: true}, {Name: "b", T: m.b, Trainable: true}}
}

func (m *toy) Len() int { return len(m.seqs) }

func (m *toy) Units(idx []int) int {
	u := 0
	for _, i := range idx {
		u += len(m.seqs[i]) - 1
	}
	return u
}

func (m *toy) Loss(idx []int) (*train.Loss, error) {
	var in, out []int64
	for _, i := range idx {
		s := m.seqs[i]
		in = append(in, s[:len(s)-1]...)
		out = append(out, s[1:]...)
	}
	x, y := ts.MustOfSlice(in), ts.MustOfSlice(out)
	logits := m.w.MustIndexSelect(0, x, false).MustAdd(m.b, true)
	loss := logits.MustCrossEntropyLoss(y, ts.NewTensor(), 2, -100, 0, true) // summed
	x.MustDrop()
	y.MustDrop()
	return &train.Loss{Sum: loss, Tokens: len(in)}, nil
}

func (m *toy) weights() []float64 {
	return append(m.w.Float64Values(), m.b.Float64Values()...)
}

// tinyLlama is a one-layer Llama small enough for a test, with 16 rows of
// 12 tokens whose labels mask a different prefix per row.
func tinyLlama(seed int64) (*train.Model, train.Objective, error) {
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":61,"hidden_size":16,"intermediate_size":24,
		"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":10000}`))
	if err != nil {
		return nil, nil, err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: seed})
	if err != nil {
		return nil, nil, err
	}
	rows := make([]tokenize.PackedRow, 16)
	for i := range rows {
		ids, labels, pos, seg := make([]int, 12), make([]int, 12), make([]int, 12), make([]int, 12)
		for j := range ids {
			ids[j] = (i*7 + j*j*3 + 1) % 61
			labels[j] = ids[j]
			if j < i%5 {
				labels[j] = tokenize.IgnoreIndex
			}
			pos[j], seg[j] = j, 1
		}
		rows[i] = tokenize.PackedRow{IDs: ids, Labels: labels, PositionIDs: pos, SegmentIDs: seg}
	}
	return m, train.NewLMObjective(m, rows, 0), nil
}

func llamaWeights(m *train.Model) []float64 {
	var w []float64
	for _, p := range m.NamedParameters() {
		w = append(w, p.T.Float64Values()...)
	}
	return w
}

func toyConfig(out string, batch, accum int) train.TrainerConfig {
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir = out
	cfg.LR = 0.05
	cfg.Epochs = 2
	cfg.WarmupRatio = 0.2
	cfg.AdamW.WeightDecay = 0.01
	cfg.BatchSize, cfg.GradAccum = batch, accum
	return cfg
}

// requireGloo skips a multi-process test on a build without Gloo (setup
// found no gloo headers: apt-get install libgloo-dev, then make setup).
func requireGloo(t *testing.T) {
	t.Helper()
	for _, b := range dist.Backends() {
		if b == "gloo" {
			return
		}
	}
	t.Skip("this build has no Gloo backend: install libgloo-dev and rerun setup")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type rank struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr bytes.Buffer
}

// spawn starts a group of n ranks running j: all of them, or only the
// ranks listed.
func spawn(t *testing.T, n int, j job, timeout string, only ...int) []*rank {
	t.Helper()
	requireGloo(t)
	spec, _ := json.Marshal(j)
	port := freePort(t)
	if only == nil {
		for r := range n {
			only = append(only, r)
		}
	}
	var ranks []*rank
	for _, r := range only {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+string(spec),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port),
			"RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			dist.TimeoutEnv+"="+timeout)
		rk := &rank{cmd: cmd}
		cmd.Stderr = &rk.stderr
		var err error
		if rk.stdout, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ranks = append(ranks, rk)
	}
	t.Cleanup(func() {
		for _, rk := range ranks {
			if rk.cmd.ProcessState == nil {
				rk.cmd.Process.Kill()
				rk.cmd.Wait()
			}
		}
	})
	return ranks
}

// runGroup runs j on two ranks and returns each rank's final weights.
func runGroup(t *testing.T, j job) [][]float64 {
	t.Helper()
	if j.Mode == "" {
		j.Mode = "train"
	}
	j.Result = filepath.Join(t.TempDir(), "weights")
	ranks := spawn(t, 2, j, "60s")
	for r, rk := range ranks {
		io.Copy(io.Discard, rk.stdout)
		if err := rk.cmd.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, rk.stderr.String())
		}
	}
	var out [][]float64
	for r := range ranks {
		b, err := os.ReadFile(fmt.Sprintf("%s-rank%d.json", j.Result, r))
		if err != nil {
			t.Fatal(err)
		}
		var w []float64
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
	return out
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestDataParallelEqualsOneProcess: two ranks with batch 2 each update the
// weights as one process with batch 4, with and without accumulation.
func TestDataParallelEqualsOneProcess(t *testing.T) {
	requireGloo(t)
	for _, accum := range []int{1, 2} {
		t.Run(fmt.Sprintf("accum%d", accum), func(t *testing.T) {
			one := newToy(24)
			tr, err := train.NewTrainer(toyConfig(t.TempDir(), 4, accum), one.params(), one, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := 2 * 24 / (4 * accum); sum.Steps != want {
				t.Fatalf("one process ran %d steps, want %d", sum.Steps, want)
			}
			ref := one.weights()
			start := newToy(24).weights()
			if maxAbsDiff(ref, start) < 1e-3 {
				t.Fatal("training did not move the weights; the comparison would prove nothing")
			}
			got := runGroup(t, job{Batch: 2, Accum: accum, Out: t.TempDir()})
			for r, w := range got {
				d := maxAbsDiff(w, ref)
				if d > 1e-5 {
					t.Errorf("rank %d: max |Δw| = %.3g against one process with batch 4, want ≤ 1e-5", r, d)
				}
				t.Logf("rank %d: max |Δw| = %.3g against one process with batch 4 (weights moved by %.3g)", r, d, maxAbsDiff(ref, start))
			}
			if d := maxAbsDiff(got[0], got[1]); d != 0 {
				t.Errorf("ranks disagree by %.3g", d)
			}
		})
	}
}

// TestDataParallelLlama: the same equivalence on a real model (a tiny
// Llama: many parameters of several shapes, masked labels), with the ranks
// starting from different random weights that the initial broadcast must
// replace by rank 0's, also when Resume finds no checkpoint.
func TestDataParallelLlama(t *testing.T) {
	requireGloo(t)
	m, obj, err := tinyLlama(1)
	if err != nil {
		t.Fatal(err)
	}
	start := llamaWeights(m)
	cfg := toyConfig(t.TempDir(), 4, 2)
	cfg.LR = 1e-3
	cfg.Epochs = 3
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ref := llamaWeights(m)
	if maxAbsDiff(ref, start) < 1e-3 {
		t.Fatal("training did not move the weights; the comparison would prove nothing")
	}
	// Resume with no checkpoint yet must still broadcast rank 0's weights.
	got := runGroup(t, job{Mode: "llama", Batch: 2, Accum: 2, Out: t.TempDir(), Resume: true})
	for r, w := range got {
		d := maxAbsDiff(w, ref)
		if d > 1e-5 {
			t.Errorf("rank %d: max |Δw| = %.3g against one process with batch 4, want ≤ 1e-5", r, d)
		}
		t.Logf("rank %d: max |Δw| = %.3g over %d weights (training moved them by up to %.3g)", r, d, len(w), maxAbsDiff(ref, start))
	}
}

// TestResumeTwoProcesses: a two-rank run stopped after step 5 (one rank is
// cancelled; the other follows at the same step) and resumed from its
// checkpoint ends where the uninterrupted two-rank run does. A single
// process may not resume it: the data position counts two ranks' batches.
func TestResumeTwoProcesses(t *testing.T) {
	whole := runGroup(t, job{Batch: 2, Accum: 1, Out: t.TempDir()})
	dir := t.TempDir()
	runGroup(t, job{Batch: 2, Accum: 1, Out: dir, CancelAt: 5, CancelRank: 1})
	if _, err := os.Stat(filepath.Join(dir, "checkpoint-5")); err != nil {
		t.Fatalf("the stopped run wrote no checkpoint-5: %v", err)
	}
	resumed := runGroup(t, job{Batch: 2, Accum: 1, Out: dir, Resume: true})
	for r := range resumed {
		if d := maxAbsDiff(resumed[r], whole[r]); d != 0 {
			t.Errorf("rank %d: resumed run differs from the uninterrupted one by %.3g", r, d)
		}
	}
	one := newToy(24)
	cfg := toyConfig(dir, 4, 1)
	cfg.Resume = true
	tr, err := train.NewTrainer(cfg, one.params(), one, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "written by a run of 2 processes") {
		t.Fatalf("one process resuming a two-process run: %v", err)
	}
}

// TestFailedRankStopsTheOthers: when rank 1 dies (killed) or hangs
// (stopped), rank 0 exits non-zero with an error that says what happened,
// at once for a death and within the timeout for a hang.
func TestFailedRankStopsTheOthers(t *testing.T) {
	const timeout = 4 * time.Second
	for _, c := range []struct {
		name   string
		signal syscall.Signal
		limit  time.Duration
	}{
		{"killed", syscall.SIGKILL, timeout},
		{"hung", syscall.SIGSTOP, timeout + 10*time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			ranks := spawn(t, 2, job{Mode: "hold"}, timeout.String())
			for r, rk := range ranks {
				sc := bufio.NewScanner(rk.stdout)
				if !sc.Scan() || sc.Text() != "ready" {
					rk.cmd.Wait()
					t.Fatalf("rank %d did not join: %s", r, rk.stderr.String())
				}
				go io.Copy(io.Discard, rk.stdout)
			}
			start := time.Now()
			if err := ranks[1].cmd.Process.Signal(c.signal); err != nil {
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
				msg := ranks[0].stderr.String()
				if !strings.Contains(msg, "rank 0 of 2") || !strings.Contains(msg, "all-reduce") {
					t.Errorf("rank 0's error does not say where it failed: %s", msg)
				}
				t.Logf("rank 0 exited %d after %v: %s", ee.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(msg))
			case <-time.After(c.limit):
				t.Fatalf("rank 0 still running %v after rank 1 was %s (timeout %v)", c.limit, c.name, timeout)
			}
			ranks[1].cmd.Process.Kill()
		})
	}
}

// TestTorchrunJoins: ranks started by PyTorch's torchrun --no-python join
// through the store torchrun's agent hosts (TORCHELASTIC_USE_AGENT_STORE).
func TestTorchrunJoins(t *testing.T) {
	requireGloo(t)
	python := pyref.LinkedTorchPython()
	if err := exec.Command(python, "-c", "import torch.distributed.run").Run(); err != nil {
		t.Skipf("no PyTorch for %s: %v", python, err)
	}
	spec, _ := json.Marshal(job{Mode: "sum"})
	cmd := exec.Command(python, "testdata/torchrun.py", "--nproc_per_node", "2", "--master_port", strconv.Itoa(freePort(t)),
		"--no_python", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"="+string(spec), dist.TimeoutEnv+"=60s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torchrun: %v\n%s", err, out)
	}
	for _, want := range []string{"rank 0 of 2: sum 3", "rank 1 of 2: sum 3"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("torchrun output lacks %q:\n%s", want, out)
		}
	}
}

// TestMissingRankTimesOut: a rank whose peer never arrives gives up after
// the timeout with an error naming the rendezvous.
func TestMissingRankTimesOut(t *testing.T) {
	start := time.Now()
	ranks := spawn(t, 2, job{Mode: "sum"}, "3s", 0)
	io.Copy(io.Discard, ranks[0].stdout)
	err := ranks[0].cmd.Wait()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("rank 0 alone ended with %v, want a non-zero exit", err)
	}
	if msg := ranks[0].stderr.String(); !strings.Contains(msg, "joining the gloo group") || !strings.Contains(msg, "as rank 0 of 2") {
		t.Errorf("error does not say what failed: %s", msg)
	}
	if took > 20*time.Second {
		t.Errorf("rank 0 waited %v for its missing peer; the timeout is 3s", took)
	}
	t.Logf("rank 0 exited %d after %v: %s", ee.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(ranks[0].stderr.String()))
}
