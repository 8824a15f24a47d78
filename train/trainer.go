package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch/ts"
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

// TrainerConfig configures a training run. A zero field takes the default
// written beside it (EnsureDefaults), so TrainerConfig{OutDir: dir} trains
// as DefaultTrainerConfig does; the defaults follow the PLLuM paper's SFT
// (AdamW, lr 1e-5, cosine, 3 epochs). Where zero would be a meaningful
// setting (no warmup, no clipping, keep every checkpoint) a negative value
// asks for it.
type TrainerConfig struct {
	OutDir      string  // checkpoints, metrics.jsonl and final/ go here; required
	Epochs      int     // passes over the data (default 3 when MaxSteps is 0)
	MaxSteps    int     // stop after this many optimizer steps; 0: Epochs decide
	BatchSize   int     // examples per micro-batch, per rank (default 1)
	GradAccum   int     // micro-batches per optimizer step (default 1)
	LR          float64 // peak learning rate (default 1e-5)
	WarmupRatio float64 // share of steps for linear warmup (default 0.03; negative: none)
	MinLRRatio  float64 // cosine floor as a share of LR (default 0)
	// Schedule gives each step's learning rate; nil: WarmupCosine over the
	// run's steps from LR, WarmupRatio and MinLRRatio.
	Schedule LRSchedule
	AdamW    AdamWConfig // zero: DefaultAdamW
	// NewOptimizer returns the optimizer over the trainable parameters;
	// nil: AdamW with the AdamW settings (the only one ZeroStage shards).
	NewOptimizer func(trainable []Param) (Optimizer, error)
	MaxGradNorm  float64 // global gradient-norm clip (default 1; negative: no clipping)
	// Seed draws the data order and dropout. It has no default: 0 is a seed
	// like any other (DefaultTrainerConfig sets 42).
	Seed      int64
	SaveEvery int  // checkpoint every N steps; 0: only at the end, on cancellation and on errors
	KeepLast  int  // checkpoints kept (default 2; negative keeps all)
	EvalEvery int  // held-out loss every N steps (with an eval objective); 0: never
	LogEvery  int  // slog line every N steps (default 10)
	Resume    bool // continue from OutDir's latest checkpoint when there is one
	// NoFinalCheckpoint skips the checkpoint at the end of the run (for
	// benchmarks; cancellation still writes one).
	NoFinalCheckpoint bool
	// Logger receives the run's log lines (a step line every LogEvery
	// steps, held-out losses, checkpoints); nil: none.
	Logger *slog.Logger
	// Progress receives a progress bar; nil: no bar. A program that wants
	// one on a terminal passes os.Stderr when term.IsTerminal says so.
	Progress io.Writer
	// Recorders see the run, step by step (recorder.go), on every rank;
	// metrics.jsonl, Progress and Logger are recorders of rank 0 that
	// come first. One may end the run early by returning ErrStop.
	Recorders []Recorder
	// OnStep, when set, is one more recorder, after Recorders: a function
	// that sees every step's record.
	OnStep func(StepRecord)
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
	// stage 2 to reduce gradients layer by layer. When set, Run also
	// switches it between training and evaluation mode (see Run).
	Model *Model
}

// DefaultTrainerConfig returns the paper's defaults: EnsureDefaults' values
// and seed 42.
func DefaultTrainerConfig() TrainerConfig {
	c := TrainerConfig{Seed: 42}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults replaces the zero fields of c that have a default by it.
func (c *TrainerConfig) EnsureDefaults() {
	if c.Epochs <= 0 && c.MaxSteps <= 0 {
		c.Epochs = 3
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1
	}
	if c.GradAccum <= 0 {
		c.GradAccum = 1
	}
	if c.LR <= 0 {
		c.LR = 1e-5
	}
	if c.WarmupRatio == 0 {
		c.WarmupRatio = 0.03
	}
	if c.AdamW == (AdamWConfig{}) {
		c.AdamW = DefaultAdamW()
	}
	if c.MaxGradNorm == 0 {
		c.MaxGradNorm = 1
	}
	if c.KeepLast == 0 {
		c.KeepLast = 2
	}
	if c.LogEvery <= 0 {
		c.LogEvery = 10
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
	Stopped    bool   // a recorder ended the run early (ErrStop)
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
// and objective; eval, when not nil, gives the held-out loss. cfg's zero
// fields take their defaults (EnsureDefaults).
func NewTrainer(cfg TrainerConfig, params []Param, obj, eval Objective) (*Trainer, error) {
	if cfg.OutDir == "" {
		return nil, errors.New("train: TrainerConfig.OutDir is empty")
	}
	cfg.EnsureDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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

// Run trains until the planned steps are done, a recorder returns ErrStop
// (the run ends as if its steps were done: checkpoint, final/), ctx is
// cancelled (a checkpoint is written, and the error wraps ctx's), or a
// loss turns non-finite (ErrNonFinite; no checkpoint is written over the
// last good one). An error inside a step's forward or backward pass — an
// Objective's error, or a libtorch failure such as CUDA running out of
// memory, which gotch reports by log.Fatal and Run turns into an error —
// writes a checkpoint of the last completed step before Run returns it
// (except under ZeRO, whose checkpoint needs every rank). For that, while
// Run is in progress the standard logger's output is wrapped so that
// log.Fatal panics with a LibtorchError instead of exiting; a log.Fatal on
// another goroutine meanwhile ends the program with that panic.
//
// Run puts the model in training mode (LoRA dropout on) for the steps and
// in evaluation mode for held-out losses and when it returns: through
// TrainerConfig.Model and every objective that has a SetTraining(bool)
// method (LMObjective, align's ORPO and DPO). The optimizer's state is
// freed when Run returns. The calling goroutine is locked to its OS thread
// meanwhile: libtorch's grad mode belongs to the thread.
func (t *Trainer) Run(ctx context.Context) (*Summary, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchx.SetGradEnabled(true)
	defer catchLibtorchFatal()()
	r, err := t.start()
	if r != nil {
		defer r.close()
	}
	if err != nil {
		return nil, err
	}
	for r.st.Step < r.total {
		// A libtorch error outside the forward and backward passes (the
		// update, a checkpoint) ends the run with an error too, without a
		// checkpoint: the state may be half updated.
		var done bool
		var err error
		if perr := guard(func() error { done, err = r.step(ctx); return nil }); perr != nil {
			return r.sum, fmt.Errorf("train: after step %d: %w", r.st.Step, perr)
		}
		if err != nil {
			return r.sum, err
		}
		if done {
			break
		}
	}
	return r.sum, guard(r.finish)
}
