package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/schollz/progressbar/v3"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"golang.org/x/term"
)

// Objective is what the training loop minimises. The loop chooses which
// examples (by index) form each micro-batch; the objective owns the data,
// collates it, runs the model and computes the loss. Language modelling
// (CPT, SFT) is LMObjective; package align adds ORPO and DPO.
type Objective interface {
	// Len is the number of examples.
	Len() int
	// Units is what the loss of examples idx is normalised by: trained
	// tokens for language modelling, pairs for preference objectives. It
	// must not need the model: the loop counts a whole accumulation window
	// (over all ranks) before the first forward pass.
	Units(idx []int) int
	// Loss runs the model on examples idx and returns their loss summed
	// over their units.
	Loss(idx []int) (*Loss, error)
}

// Loss is one micro-batch's result.
type Loss struct {
	Sum     *ts.Tensor         // scalar, summed over the micro-batch's units
	Tokens  int                // input tokens processed (padding excluded)
	Metrics map[string]float64 // extra metrics, each summed over units
	// DeviceMetrics are more such metrics as scalar tensors: the trainer
	// sums them on the device and reads them once per optimizer step with
	// the loss, so an objective needs no host round-trip per micro-batch.
	DeviceMetrics map[string]*ts.Tensor
	// Pass, when set, is the model pass Sum was computed from, whose
	// Backward the trainer calls instead of Sum's own (activation
	// checkpointing); the trainer frees it.
	Pass *Pass
}

// backward runs the backward of loss, computed from l.Sum, and frees l's
// pass.
func (l *Loss) backward(loss *ts.Tensor) error {
	if l.Pass == nil {
		return loss.Backward()
	}
	err := l.Pass.Backward(loss)
	l.Pass.Drop()
	l.Pass = nil
	return err
}

// Metric is metric name's value, from Metrics or read from DeviceMetrics.
func (l *Loss) Metric(name string) float64 {
	if t, ok := l.DeviceMetrics[name]; ok {
		return torchx.Float64s(t, false)[0]
	}
	return l.Metrics[name]
}

// AllMetrics returns Metrics and DeviceMetrics together, reading the
// device ones to the host.
func (l *Loss) AllMetrics() map[string]float64 {
	out := make(map[string]float64, len(l.Metrics)+len(l.DeviceMetrics))
	for k, v := range l.Metrics {
		out[k] = v
	}
	for k, t := range l.DeviceMetrics {
		out[k] += torchx.Float64s(t, false)[0]
	}
	return out
}

// Release frees the tensors l holds (Sum, DeviceMetrics, Pass), for a
// caller that computed a loss without training on it.
func (l *Loss) Release() {
	if l.Sum != nil {
		l.Sum.MustDrop()
	}
	for _, t := range l.DeviceMetrics {
		t.MustDrop()
	}
	l.DeviceMetrics = nil
	if l.Pass != nil {
		l.Pass.Drop()
		l.Pass = nil
	}
}

// Communicator joins a data-parallel group of processes. A nil
// Communicator means a single process.
type Communicator interface {
	Rank() int
	Size() int
	// AllReduceSum replaces each tensor by its sum over all ranks.
	AllReduceSum(tensors []*ts.Tensor) error
	// Broadcast replaces each tensor by root's.
	Broadcast(tensors []*ts.Tensor, root int) error
}

// TrainerConfig configures a training run. Start from DefaultTrainerConfig:
// its defaults follow the PLLuM paper's SFT (AdamW, lr 1e-5, cosine, 3
// epochs).
type TrainerConfig struct {
	OutDir      string  // checkpoints, metrics.jsonl and final/ go here
	Epochs      int     // passes over the data (default 3)
	MaxSteps    int     // stop after this many optimizer steps; 0: Epochs decide
	BatchSize   int     // examples per micro-batch, per rank (default 1)
	GradAccum   int     // micro-batches per optimizer step (default 1)
	LR          float64 // peak learning rate (default 1e-5)
	WarmupRatio float64 // share of steps for linear warmup (default 0.03)
	MinLRRatio  float64 // cosine floor as a share of LR (default 0)
	AdamW       AdamWConfig
	MaxGradNorm float64 // global gradient-norm clip; 0 disables (default 1)
	Seed        int64   // data order and dropout (default 42)
	SaveEvery   int     // checkpoint every N steps; 0: only at the end and on cancellation
	KeepLast    int     // checkpoints kept (default 2; 0 keeps all)
	EvalEvery   int     // held-out loss every N steps (with an eval objective)
	LogEvery    int     // slog line every N steps (default 10)
	Resume      bool    // continue from OutDir's latest checkpoint when there is one
	// NoFinalCheckpoint skips the checkpoint at the end of the run (for
	// benchmarks; cancellation still writes one).
	NoFinalCheckpoint bool
	Logger            *slog.Logger
	// Progress receives the progress bar. Nil: standard error when it is
	// a terminal, no bar otherwise.
	Progress io.Writer
	// Export writes the model in its distributable layout (Hugging Face
	// folder, PEFT adapter) into a folder: called for OutDir/final and, when
	// ExportCheckpoints is set, for every checkpoint.
	Export            func(dir string) error
	ExportCheckpoints bool
	Comm              Communicator
	// ZeroStage shards training state over Comm's ranks (zero.go,
	// zero3.go): 0 plain data parallel; 1 AdamW state and fp32 master
	// weights; 2 gradients too (reduced unit by unit inside the backward
	// pass when Model checkpoints, after it otherwise); 3 parameters too,
	// gathered one unit (embedding, decoder layer, head) at a time: needs
	// Model, with activation checkpointing on. A stage-3 model stays
	// sharded when Run returns; final/ (Export) is streamed from the
	// ranks' shard files.
	ZeroStage int
	// OffloadOptimizer keeps the optimizer shard (moments and fp32 master
	// weights) in CPU memory; with ZeroStage 1 to 3.
	OffloadOptimizer bool
	// Model is the model params belong to: needed by ZeroStage 3, and by
	// stage 2 to reduce gradients layer by layer.
	Model *Model
	// OnStep, when set, sees every step's record after it is written.
	OnStep func(StepRecord)
}

// DefaultTrainerConfig returns the paper's defaults.
func DefaultTrainerConfig() TrainerConfig {
	return TrainerConfig{
		Epochs: 3, BatchSize: 1, GradAccum: 1, LR: 1e-5, WarmupRatio: 0.03,
		AdamW: DefaultAdamW(), MaxGradNorm: 1, Seed: 42, KeepLast: 2, LogEvery: 10,
	}
}

// StepRecord is one line of metrics.jsonl.
type StepRecord struct {
	Step       int                `json:"step"`
	Epoch      float64            `json:"epoch"`
	Loss       float64            `json:"loss"`
	LR         float64            `json:"lr"`
	GradNorm   float64            `json:"grad_norm"`
	Tokens     int                `json:"tokens"` // input tokens in this step, all ranks
	TokensPerS float64            `json:"tokens_per_s"`
	ElapsedS   float64            `json:"elapsed_s"`
	EvalLoss   *float64           `json:"eval_loss,omitempty"`
	Extra      map[string]float64 `json:"-"` // the objective's metrics, written inline
}

// MarshalJSON writes the objective's metrics beside the standard fields.
func (r StepRecord) MarshalJSON() ([]byte, error) {
	type plain StepRecord
	b, err := json.Marshal(plain(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range r.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// Summary is what a finished run reports.
type Summary struct {
	Steps      int
	FinalLoss  float64
	Final      string // OutDir/final when exported
	Checkpoint string // the last checkpoint written
}

// ErrNonFinite reports a NaN or infinite loss or gradient norm; the run
// stops before the bad update and the last checkpoint stays the good one.
var ErrNonFinite = errors.New("non-finite loss")

// Trainer runs the optimisation loop over a model's parameters.
type Trainer struct {
	cfg    TrainerConfig
	params []Param
	obj    Objective
	eval   Objective
}

// NewTrainer returns a trainer for the given parameters (Model.NamedParameters)
// and objective; eval, when not nil, gives the held-out loss.
func NewTrainer(cfg TrainerConfig, params []Param, obj, eval Objective) (*Trainer, error) {
	if cfg.OutDir == "" {
		return nil, errors.New("train: TrainerConfig.OutDir is empty")
	}
	def := DefaultTrainerConfig()
	if cfg.Epochs <= 0 && cfg.MaxSteps <= 0 {
		cfg.Epochs = def.Epochs
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1
	}
	if cfg.GradAccum <= 0 {
		cfg.GradAccum = 1
	}
	if cfg.LR <= 0 {
		cfg.LR = def.LR
	}
	if cfg.AdamW == (AdamWConfig{}) {
		cfg.AdamW = def.AdamW
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = def.LogEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil && term.IsTerminal(int(os.Stderr.Fd())) {
		cfg.Progress = os.Stderr
	}
	return &Trainer{cfg: cfg, params: params, obj: obj, eval: eval}, nil
}

func (t *Trainer) rank() int {
	if t.cfg.Comm == nil {
		return 0
	}
	return t.cfg.Comm.Rank()
}

func (t *Trainer) world() int {
	if t.cfg.Comm == nil {
		return 1
	}
	return t.cfg.Comm.Size()
}

// epochOrder is the example order of an epoch: a permutation drawn from the
// run's seed and the epoch number, the same on every rank and every resume.
func epochOrder(n int, seed int64, epoch int) []int {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)+0x9e3779b97f4a7c15))
	return r.Perm(n)
}

// Run trains until the planned steps are done, ctx is cancelled (a
// checkpoint is written, and the error wraps ctx's), or a loss turns
// non-finite (ErrNonFinite; no checkpoint is written over the last good
// one). The calling goroutine is locked to its OS thread meanwhile:
// libtorch's grad mode belongs to the thread.
func (t *Trainer) Run(ctx context.Context) (*Summary, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchx.SetGradEnabled(true)
	cfg := t.cfg
	log := cfg.Logger
	isMain := t.rank() == 0
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	opt, err := t.newOptimizer()
	if err != nil {
		return nil, err
	}
	defer detachUnits(opt)
	global := cfg.BatchSize * t.world() // examples per micro-step, all ranks
	window := global * cfg.GradAccum    // examples per optimizer step
	n := t.obj.Len()
	stepsPerEpoch := n / window
	if stepsPerEpoch == 0 {
		return nil, fmt.Errorf("train: %d examples cannot fill one optimizer step of %d (batch %d × accumulation %d × %d ranks)", n, window, cfg.BatchSize, cfg.GradAccum, t.world())
	}
	total := cfg.MaxSteps
	if total <= 0 {
		total = cfg.Epochs * stepsPerEpoch
	}
	sched := Schedule{PeakLR: cfg.LR, WarmupSteps: int(math.Ceil(cfg.WarmupRatio * float64(total))), TotalSteps: total, MinLRRatio: cfg.MinLRRatio}
	data := ""
	if f, ok := t.obj.(interface{ DataFingerprint() string }); ok {
		data = f.DataFingerprint()
	}
	st := trainerState{TotalSteps: total, Seed: cfg.Seed, WorldSize: t.world(), Data: data, Rows: n}
	if cfg.Resume {
		if dir, err := LatestCheckpoint(cfg.OutDir); err != nil {
			return nil, err
		} else if dir != "" {
			if st, err = t.loadCheckpoint(dir, opt); err != nil {
				return nil, err
			}
			if st.Seed != cfg.Seed {
				return nil, fmt.Errorf("resume: %s was trained with seed %d, this run has %d", dir, st.Seed, cfg.Seed)
			}
			if st.WorldSize > 0 && st.WorldSize != t.world() {
				return nil, fmt.Errorf("resume: %s was written by a run of %d processes, this run has %d: the data position counts global batches, so resume with %d", dir, st.WorldSize, t.world(), st.WorldSize)
			}
			if st.Data != "" && data != "" && st.Data != data {
				return nil, fmt.Errorf("resume: %s was trained on other data (fingerprint %s, this run's %s): the saved data position means nothing here", dir, st.Data, data)
			}
			if st.Rows > 0 && st.Rows != n {
				return nil, fmt.Errorf("resume: %s was trained on %d rows, this run has %d: the saved data position means nothing here", dir, st.Rows, n)
			}
			st.Data, st.Rows = data, n
			st.TotalSteps = total
			log.Info("resumed", "checkpoint", dir, "step", st.Step, "epoch", st.Epoch)
		}
		if t.world() > 1 {
			// Only rank 0 writes checkpoints: a rank that cannot see them
			// (no shared file system) would start elsewhere and desync.
			// The steps are all equal when their sum and sum of squares
			// are those of equal steps.
			s := float64(st.Step)
			got, err := t.allReduce([]float64{s, s * s})
			if err != nil {
				return nil, err
			}
			if w := float64(t.world()); got[0] != w*s || got[1] != w*s*s {
				return nil, fmt.Errorf("resume: rank %d resumes at step %d but other ranks do not: every rank must see OutDir's checkpoints (%s), e.g. on a shared file system", t.rank(), st.Step, cfg.OutDir)
			}
		}
	}
	if t.world() > 1 && st.Step == 0 && !isStage3(opt) {
		// A fresh run (also a Resume with no checkpoint yet): every rank
		// starts from rank 0's weights.
		tensors := make([]*ts.Tensor, 0, len(opt.Params()))
		for _, p := range opt.Params() {
			tensors = append(tensors, p.T)
		}
		var berr error
		torchx.NoGrad(func() { berr = cfg.Comm.Broadcast(tensors, 0) })
		if berr != nil {
			return nil, fmt.Errorf("train: broadcasting initial weights: %w", berr)
		}
		refreshMasters(opt)
	}
	var metrics *metricsWriter
	if isMain {
		if metrics, err = openMetrics(filepath.Join(cfg.OutDir, "metrics.jsonl"), st.Step); err != nil {
			return nil, err
		}
		defer metrics.Close()
	}
	var bar *progressbar.ProgressBar
	if isMain && cfg.Progress != nil {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(cfg.Progress),
			progressbar.OptionSetDescription("training"), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
		_ = bar.Set(st.Step)
	}
	sum := &Summary{}
	save := func() error {
		var export func(string) error
		if cfg.ExportCheckpoints {
			export = cfg.Export
		}
		dir, err := t.saveCheckpoint(st, opt, export)
		if err != nil || !isMain {
			return err
		}
		sum.Checkpoint = dir
		log.Info("checkpoint written", "dir", dir)
		return pruneCheckpoints(cfg.OutDir, cfg.KeepLast)
	}
	grads := newStepGrads(stepGradParams(opt))
	defer grads.release()
	order := epochOrder(n, cfg.Seed, st.Epoch)
	start := time.Now()
	elapsedBefore := st.ElapsedS
	for st.Step < total {
		// The ranks agree on stopping through the step's first all-reduce,
		// so all of them stop after the same step and rank 0's checkpoint
		// is the state of every rank.
		stop := 0.0
		if ctx.Err() != nil {
			stop = 1
		}
		stepStart := time.Now()
		base := st.Cursor * window
		micro := make([][]int, cfg.GradAccum)
		localUnits := 0
		for j := range micro {
			off := base + j*global + t.rank()*cfg.BatchSize
			micro[j] = order[off : off+cfg.BatchSize]
			localUnits += t.obj.Units(micro[j])
		}
		if d, ok := t.obj.(interface{ DataErr() error }); ok && d.DataErr() != nil {
			return sum, fmt.Errorf("train: step %d: %w", st.Step+1, d.DataErr())
		}
		units, err := t.allReduce([]float64{float64(localUnits), stop})
		if err != nil {
			return sum, err
		}
		if units[1] > 0 {
			err := ctx.Err()
			if err == nil {
				err = fmt.Errorf("another rank was stopped: %w", context.Canceled)
			}
			if serr := save(); serr != nil {
				return sum, errors.Join(err, serr)
			}
			return sum, fmt.Errorf("train: stopped at step %d: %w", st.Step, err)
		}
		if units[0] == 0 {
			return sum, fmt.Errorf("train: step %d: no trained units in the whole window (all labels masked?)", st.Step+1)
		}
		// Dropout draws from a generator seeded per step, so a resumed run
		// draws what the uninterrupted one did.
		torchx.ManualSeed(cfg.Seed*1_000_003 + int64(st.Step)*7919 + int64(t.rank()))
		// The micro-batches' losses are summed on the device and read once
		// per optimizer step: no host round-trip between micro-batches.
		var lossAcc *ts.Tensor
		tokens := 0
		extra := map[string]float64{}
		devExtra := map[string]*ts.Tensor{}
		for _, idx := range micro {
			l, err := t.obj.Loss(idx)
			if err != nil {
				dropAll([]*ts.Tensor{lossAcc})
				return sum, fmt.Errorf("train: step %d: %w", st.Step+1, err)
			}
			d := l.Sum.MustDetach(false)
			if lossAcc == nil {
				lossAcc = d.MustTotype(gotch.Double, true)
			} else {
				lossAcc = lossAcc.MustAdd(d, true)
				d.MustDrop()
			}
			scaled := l.Sum.MustDivScalar(ts.FloatScalar(units[0]), false)
			err = l.backward(scaled)
			scaled.MustDrop()
			if err != nil {
				l.Release()
				lossAcc.MustDrop()
				return sum, fmt.Errorf("train: step %d: backward: %w", st.Step+1, err)
			}
			grads.collect()
			tokens += l.Tokens
			for k, x := range l.Metrics {
				extra[k] += x
			}
			for k, x := range l.DeviceMetrics {
				d := x.MustDetach(false).MustTotype(gotch.Double, true)
				if devExtra[k] == nil {
					devExtra[k] = d
				} else {
					devExtra[k] = devExtra[k].MustAdd(d, true)
					d.MustDrop()
				}
			}
			l.Release()
		}
		// One read for the loss and every device metric.
		devKeys := make([]string, 0, len(devExtra))
		for k := range devExtra {
			devKeys = append(devKeys, k)
		}
		sort.Strings(devKeys)
		read := []*ts.Tensor{lossAcc.MustView([]int64{1}, false)}
		for _, k := range devKeys {
			read = append(read, devExtra[k].MustView([]int64{1}, true))
		}
		lossAcc.MustDrop()
		all := ts.MustCat(read, 0)
		dropAll(read)
		got := torchx.Float64s(all, true)
		lossSum := got[0]
		for i, k := range devKeys {
			extra[k] += got[1+i]
		}
		if math.IsNaN(lossSum) || math.IsInf(lossSum, 0) {
			return sum, fmt.Errorf("train: step %d: loss is %v: %w; the last good checkpoint is %q", st.Step+1, lossSum, ErrNonFinite, sum.Checkpoint)
		}
		keys := make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		vals := []float64{lossSum, float64(tokens)}
		for _, k := range keys {
			vals = append(vals, extra[k])
		}
		if vals, err = t.allReduce(vals); err != nil {
			return sum, err
		}
		lr := sched.LR(st.Step)
		norm, err := t.update(opt, lr, grads.grads())
		if errors.Is(err, ErrNonFinite) {
			return sum, fmt.Errorf("train: step %d: %w; the last good checkpoint is %q", st.Step+1, err, sum.Checkpoint)
		}
		if err != nil {
			return sum, err
		}
		opt.ZeroGrad()
		grads.reset()
		torchx.ReleaseFreeMemory()
		st.Step++
		st.Cursor++
		if st.Cursor == stepsPerEpoch {
			st.Epoch++
			st.Cursor = 0
			order = epochOrder(n, cfg.Seed, st.Epoch)
		}
		st.LR = lr
		st.Loss = vals[0] / units[0]
		st.Tokens += int64(vals[1])
		st.ElapsedS = elapsedBefore + time.Since(start).Seconds()
		rec := StepRecord{
			Step: st.Step, Epoch: float64(st.Epoch) + float64(st.Cursor)/float64(stepsPerEpoch),
			Loss: st.Loss, LR: lr, GradNorm: norm, Tokens: int(vals[1]),
			TokensPerS: vals[1] / time.Since(stepStart).Seconds(), ElapsedS: st.ElapsedS,
		}
		if len(keys) > 0 {
			rec.Extra = map[string]float64{}
			for i, k := range keys {
				rec.Extra[k] = vals[2+i] / units[0]
			}
		}
		if t.eval != nil && cfg.EvalEvery > 0 && (st.Step%cfg.EvalEvery == 0 || st.Step == total) {
			el, err := EvalLoss(t.eval, cfg.BatchSize)
			if err != nil {
				return sum, fmt.Errorf("train: step %d: held-out loss: %w", st.Step, err)
			}
			rec.EvalLoss = &el
			log.Info("held-out loss", "step", st.Step, "eval_loss", el)
		}
		sum.Steps, sum.FinalLoss = st.Step, st.Loss
		if isMain {
			if err := metrics.Write(rec); err != nil {
				return sum, err
			}
			if bar != nil {
				bar.Describe(fmt.Sprintf("loss %.4f lr %.2e", st.Loss, lr))
				_ = bar.Set(st.Step)
			}
			if st.Step%cfg.LogEvery == 0 || st.Step == 1 || st.Step == total {
				log.Info("step", "step", st.Step, "epoch", rec.Epoch, "loss", rec.Loss, "lr", lr, "grad_norm", norm, "tokens_per_s", math.Round(rec.TokensPerS))
			}
		}
		if cfg.OnStep != nil {
			cfg.OnStep(rec)
		}
		if cfg.SaveEvery > 0 && st.Step%cfg.SaveEvery == 0 && st.Step < total {
			if err := save(); err != nil {
				return sum, err
			}
		}
	}
	if !cfg.NoFinalCheckpoint {
		if err := save(); err != nil {
			return sum, err
		}
	}
	staging, err := t.prepareExport(opt, st.Step)
	if err != nil {
		return sum, err
	}
	if staging != "" && isMain {
		defer os.RemoveAll(staging)
	}
	if isMain && cfg.Export != nil {
		final := filepath.Join(cfg.OutDir, "final")
		tmp := final + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return sum, err
		}
		if err := cfg.Export(tmp); err != nil {
			return sum, fmt.Errorf("train: exporting the final model: %w", err)
		}
		os.RemoveAll(final)
		if err := os.Rename(tmp, final); err != nil {
			return sum, err
		}
		sum.Final = final
	}
	return sum, nil
}

// update reduces the step's gradients over the ranks, clips them to
// MaxGradNorm and applies the optimizer (grads are the step's, one per
// parameter, owned by update). It returns the norm before clipping, with
// ErrNonFinite and no update when it is not finite.
func (t *Trainer) update(opt optimizer, lr float64, step []*ts.Tensor) (float64, error) {
	if z, ok := opt.(*zeroOptimizer); ok && z.perLayer {
		dropAll(step) // none: the layers' backward passes reduced them
		return z.stepFromSums(t, lr, t.cfg.MaxGradNorm)
	}
	if z, ok := opt.(*zeroOptimizer); ok && z.stage == 2 {
		return z.reduceScatterStep(t, lr, t.cfg.MaxGradNorm, step)
	}
	defer dropAll(step)
	if t.world() > 1 {
		if err := t.reduceGrads(opt.Params(), step); err != nil {
			return 0, err
		}
	}
	norm := clipGrads(step, t.cfg.MaxGradNorm)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("gradient norm is %v: %w", norm, ErrNonFinite)
	}
	return norm, opt.StepGrads(lr, step)
}

// allReduce sums vals over ranks (a no-op for one process).
func (t *Trainer) allReduce(vals []float64) ([]float64, error) {
	if t.world() == 1 {
		return vals, nil
	}
	x := ts.MustOfSlice(vals)
	defer x.MustDrop()
	if err := t.cfg.Comm.AllReduceSum([]*ts.Tensor{x}); err != nil {
		return nil, fmt.Errorf("train: all-reduce: %w", err)
	}
	return torchx.Float64s(x, false), nil
}

// reduceGrads sums the step's gradients (fp32 for low-precision
// parameters) over ranks. Every rank scaled its loss by the window's units
// over all ranks, so the sum is the gradient of the whole window's mean
// loss. A parameter this rank's micro-batches did not reach (an unused
// expert) sends zeros, so every rank sends the same list; it keeps no
// gradient only when no rank reached it.
func (t *Trainer) reduceGrads(params []Param, grads []*ts.Tensor) error {
	dev := gotch.CPU
	if len(params) > 0 {
		dev = params[0].T.MustDevice()
	}
	flags := make([]float32, len(params))
	send := make([]*ts.Tensor, 0, len(params)+1)
	for i, p := range params {
		if grads[i] != nil {
			flags[i] = 1
		} else {
			grads[i] = ts.MustZeros(p.T.MustSize(), gotch.Float, p.T.MustDevice())
		}
		send = append(send, grads[i])
	}
	f := ts.MustOfSlice(flags)
	if !sameDevice(dev, gotch.CPU) {
		f = f.MustTo(dev, true)
	}
	send = append(send, f)
	var err error
	torchx.NoGrad(func() { err = t.cfg.Comm.AllReduceSum(send) })
	if err != nil {
		f.MustDrop()
		return fmt.Errorf("train: gradient all-reduce: %w", err)
	}
	for i, v := range torchx.Float64s(f, true) {
		if v == 0 {
			grads[i].MustDrop()
			grads[i] = nil
		}
	}
	return nil
}

// EvalLoss is obj's mean loss per unit over all its examples, in order,
// without gradients.
func EvalLoss(obj Objective, batchSize int) (float64, error) {
	if batchSize <= 0 {
		batchSize = 1
	}
	var lossSum, units float64
	var err error
	torchx.NoGrad(func() {
		for i := 0; i < obj.Len(); i += batchSize {
			idx := make([]int, 0, batchSize)
			for j := i; j < min(i+batchSize, obj.Len()); j++ {
				idx = append(idx, j)
			}
			var l *Loss
			if l, err = obj.Loss(idx); err != nil {
				return
			}
			lossSum += torchx.Float64s(l.Sum, false)[0]
			l.Release()
			units += float64(obj.Units(idx))
		}
	})
	if err != nil {
		return 0, err
	}
	if units == 0 {
		return 0, errors.New("train: held-out set has no trained units")
	}
	return lossSum / units, nil
}

// metricsWriter appends StepRecords to metrics.jsonl. Opened for a resumed
// run, it first drops the lines of steps after the checkpoint, so the file
// tells the run's history once.
type metricsWriter struct {
	f *os.File
	w *bufio.Writer
}

func openMetrics(path string, fromStep int) (*metricsWriter, error) {
	var keep [][]byte
	if b, err := os.ReadFile(path); err == nil && fromStep > 0 {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for sc.Scan() {
			var r struct{ Step int }
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Step <= fromStep {
				keep = append(keep, append([]byte(nil), sc.Bytes()...))
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	for _, l := range keep {
		w.Write(l)
		w.WriteByte('\n')
	}
	return &metricsWriter{f: f, w: w}, w.Flush()
}

func (m *metricsWriter) Write(r StepRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	m.w.Write(b)
	m.w.WriteByte('\n')
	return m.w.Flush()
}

func (m *metricsWriter) Close() error { return m.f.Close() }
