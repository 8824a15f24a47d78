package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// bigram is a tiny language model for testing the loop without a
// transformer: logits of the next token are a row of W picked by the
// current token. Its examples have different lengths, so the token-count
// normalisation matters.
type bigram struct {
	w    *ts.Tensor // [V, V]
	seqs [][]int64
	nan  int // Loss returns NaN on this call number (1-based); 0 never
	call int
}

const bigramV = 7

func newBigram(t testing.TB, n int) *bigram {
	t.Helper()
	vals := make([]float32, bigramV*bigramV)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)*1.3)) * 0.1
	}
	w := ts.MustOfSlice(vals).MustView([]int64{bigramV, bigramV}, true).MustSetRequiresGrad(true, true)
	b := &bigram{w: w}
	for i := range n {
		l := 3 + i%5
		s := make([]int64, l)
		for j := range s {
			s[j] = int64((i*3 + j*j) % bigramV)
		}
		b.seqs = append(b.seqs, s)
	}
	return b
}

func (b *bigram) params() []Param { return []Param{{Name: "w", T: b.w, Trainable: true}} }
func (b *bigram) Len() int        { return len(b.seqs) }
func (b *bigram) Units(idx []int) int {
	u := 0
	for _, i := range idx {
		u += len(b.seqs[i]) - 1
	}
	return u
}

func (b *bigram) Loss(idx []int) (*Loss, error) {
	b.call++
	var in, out []int64
	for _, i := range idx {
		s := b.seqs[i]
		in = append(in, s[:len(s)-1]...)
		out = append(out, s[1:]...)
	}
	x := ts.MustOfSlice(in)
	y := ts.MustOfSlice(out)
	logits := b.w.MustIndexSelect(0, x, false)
	loss := logits.MustCrossEntropyLoss(y, ts.None, 2, -100, 0, true) // reduction sum
	x.MustDrop()
	y.MustDrop()
	if b.call == b.nan {
		loss = loss.MustMulScalar(ts.FloatScalar(math.NaN()), true)
	}
	return &Loss{Sum: loss, Tokens: len(in), Metrics: map[string]float64{"units_seen": float64(len(out))}}, nil
}

func weights(b *bigram) []float64 { return b.w.Float64Values() }

func runBigram(t *testing.T, cfg TrainerConfig, b *bigram) *Summary {
	t.Helper()
	tr, err := NewTrainer(cfg, b.params(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(dir string) TrainerConfig {
	cfg := DefaultTrainerConfig()
	cfg.OutDir = dir
	cfg.LR = 0.05
	cfg.Epochs = 2
	cfg.WarmupRatio = 0.2
	cfg.AdamW.WeightDecay = 0.01
	return cfg
}

// TestAccumulationEquivalence: batch B with k accumulation steps updates
// the weights as one batch of B·k, because the loss is normalised by the
// trained tokens of the whole window.
func TestAccumulationEquivalence(t *testing.T) {
	var ref []float64
	for _, c := range []struct{ batch, accum int }{{4, 1}, {2, 2}, {1, 4}} {
		b := newBigram(t, 12)
		cfg := testConfig(t.TempDir())
		cfg.BatchSize, cfg.GradAccum = c.batch, c.accum
		runBigram(t, cfg, b)
		w := weights(b)
		if ref == nil {
			ref = w
			continue
		}
		for i := range w {
			if math.Abs(w[i]-ref[i]) > 1e-6 {
				t.Fatalf("batch %d × accum %d: w[%d] = %.8f, batch 4 gives %.8f", c.batch, c.accum, i, w[i], ref[i])
			}
		}
	}
}

// TestResumeReproduces: a run cancelled mid-way and resumed from its
// checkpoint ends with exactly the weights of the uninterrupted run.
func TestResumeReproduces(t *testing.T) {
	whole := newBigram(t, 12)
	cfg := testConfig(t.TempDir())
	cfg.BatchSize = 2
	runBigram(t, cfg, whole)

	dir := t.TempDir()
	first := newBigram(t, 12)
	cfg = testConfig(dir)
	cfg.BatchSize = 2
	ctx, cancel := context.WithCancel(context.Background())
	cfg.OnStep = func(r StepRecord) {
		if r.Step == 5 {
			cancel()
		}
	}
	tr, _ := NewTrainer(cfg, first.params(), first, nil)
	if _, err := tr.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint-5", stateFile)); err != nil {
		t.Fatalf("no checkpoint written on cancellation: %v", err)
	}

	second := newBigram(t, 12) // fresh weights: everything must come from the checkpoint
	cfg.OnStep = nil
	cfg.Resume = true
	sum := runBigram(t, cfg, second)
	if sum.Steps != 12 {
		t.Fatalf("resumed run ended at step %d, want 12", sum.Steps)
	}
	a, b := weights(whole), weights(second)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("w[%d]: uninterrupted %.9g, resumed %.9g", i, a[i], b[i])
		}
	}
	// metrics.jsonl tells each step once.
	steps := readSteps(t, filepath.Join(dir, "metrics.jsonl"))
	if len(steps) != 12 || steps[0] != 1 || steps[11] != 12 {
		t.Fatalf("metrics.jsonl steps = %v", steps)
	}
}

func readSteps(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"step", "epoch", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s", "units_seen"} {
			if _, ok := r[k]; !ok {
				t.Fatalf("metrics line lacks %q: %s", k, sc.Text())
			}
		}
		steps = append(steps, int(r["step"].(float64)))
	}
	return steps
}

func TestLossDecreases(t *testing.T) {
	b := newBigram(t, 12)
	cfg := testConfig(t.TempDir())
	cfg.Epochs = 10
	var first, last float64
	cfg.OnStep = func(r StepRecord) {
		if r.Step == 1 {
			first = r.Loss
		}
		last = r.Loss
	}
	runBigram(t, cfg, b)
	if !(last < first*0.7) {
		t.Fatalf("loss %.4f → %.4f: did not go down", first, last)
	}
}

// TestNaNStops: a NaN loss stops the run before the bad update, with
// ErrNonFinite, and leaves the last good checkpoint as the newest one.
func TestNaNStops(t *testing.T) {
	dir := t.TempDir()
	b := newBigram(t, 12)
	b.nan = 4 // the fourth micro-batch, the fourth step
	cfg := testConfig(dir)
	cfg.SaveEvery = 2
	tr, _ := NewTrainer(cfg, b.params(), b, nil)
	_, err := tr.Run(context.Background())
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "checkpoint-2") {
		t.Fatalf("got %v, want ErrNonFinite naming checkpoint-2", err)
	}
	latest, _ := LatestCheckpoint(dir)
	if filepath.Base(latest) != "checkpoint-2" {
		t.Fatalf("latest checkpoint %q, want checkpoint-2", latest)
	}
	for _, v := range weights(b) {
		if math.IsNaN(v) {
			t.Fatal("NaN reached the weights")
		}
	}
}

func rssKB(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// TestRSSFlat: over 1,000 steps the loop releases its tensors: the number
// of live gotch tensors after step 1,000 equals that after step 200, and
// resident memory stays within allocator noise (glibc keeps freed pages;
// measured swings here are ±10 MB around a flat line).
func TestRSSFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 steps")
	}
	b := newBigram(t, 8)
	cfg := testConfig(t.TempDir())
	cfg.MaxSteps = 1000
	cfg.BatchSize = 4
	var rss200, rss1000, live200, live1000 int
	cfg.OnStep = func(r StepRecord) {
		switch r.Step {
		case 200:
			runtime.GC()
			rss200, live200 = rssKB(t), len(ts.ExistingTensors)
		case 1000:
			runtime.GC()
			rss1000, live1000 = rssKB(t), len(ts.ExistingTensors)
		}
	}
	runBigram(t, cfg, b)
	if live1000 != live200 {
		t.Fatalf("live tensors: %d after step 200, %d after step 1,000", live200, live1000)
	}
	if grow := rss1000 - rss200; grow > 32*1024 {
		t.Fatalf("RSS grew by %d KB between steps 200 and 1,000 (%d → %d KB)", grow, rss200, rss1000)
	}
	t.Logf("RSS %d KB at step 200, %d KB at step 1,000; %d live tensors", rss200, rss1000, live1000)
}
