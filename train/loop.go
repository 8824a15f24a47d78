package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// run is one Run of a Trainer: the plan, where it stands, and what it
// holds (optimizer, gradient sums, recorders) until it closes.
type run struct {
	t     *Trainer
	cfg   TrainerConfig
	opt   optimizer
	sched LRSchedule
	st    trainerState
	sum   *Summary
	grads *stepGrads
	recs  []Recorder

	n, global, window, stepsPerEpoch, total int
	order                                   []int

	start         time.Time
	elapsedBefore float64
	stopAsked     bool // a recorder returned ErrStop
	saved         int  // step of the last checkpoint written; -1: none
}

// start plans the run: the optimizer, the step count, the resumed state,
// the initial weights of a group, the recorders. The run it returns, even
// with an error, must be closed.
func (t *Trainer) start() (*run, error) {
	cfg := t.cfg
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	opt, err := t.newRunOptimizer()
	if err != nil {
		return nil, err
	}
	r := &run{t: t, cfg: cfg, opt: opt, sum: &Summary{}, saved: -1}
	r.global = cfg.BatchSize * t.world() // examples per micro-step, all ranks
	r.window = r.global * cfg.GradAccum  // examples per optimizer step
	r.n = t.obj.Len()
	r.stepsPerEpoch = r.n / r.window
	if r.stepsPerEpoch == 0 {
		return r, fmt.Errorf("train: %d examples cannot fill one optimizer step of %d (batch %d × accumulation %d × %d ranks)", r.n, r.window, cfg.BatchSize, cfg.GradAccum, t.world())
	}
	r.total = cfg.MaxSteps
	if r.total <= 0 {
		r.total = cfg.Epochs * r.stepsPerEpoch
	}
	r.sched = cfg.Schedule
	if r.sched == nil {
		r.sched = WarmupCosine(cfg.LR, r.total, max(0, cfg.WarmupRatio), cfg.MinLRRatio)
	}
	if err := r.resume(); err != nil {
		return r, err
	}
	if t.world() > 1 && r.st.Step == 0 && !isStage3(opt) {
		// A fresh run (also a Resume with no checkpoint yet): every rank
		// starts from rank 0's weights.
		tensors := make([]*ts.Tensor, 0, len(opt.Params()))
		for _, p := range opt.Params() {
			tensors = append(tensors, p.T)
		}
		var berr error
		torchx.NoGrad(func() { berr = cfg.Comm.Broadcast(tensors, 0) })
		if berr != nil {
			return r, fmt.Errorf("train: broadcasting initial weights: %w", berr)
		}
		refreshMasters(opt)
	}
	if err := r.initRecorders(); err != nil {
		return r, err
	}
	r.grads = newStepGrads(stepGradParams(opt))
	r.order = epochOrder(r.n, cfg.Seed, r.st.Epoch)
	r.start = time.Now()
	r.elapsedBefore = r.st.ElapsedS
	t.setTraining(true)
	return r, nil
}

// resume sets where the run starts: step 0, or OutDir's latest
// checkpoint under Resume, after checking it belongs to this run.
func (r *run) resume() error {
	t, cfg := r.t, r.cfg
	data := ""
	if f, ok := t.obj.(interface{ DataFingerprint() string }); ok {
		data = f.DataFingerprint()
	}
	r.st = trainerState{TotalSteps: r.total, Seed: cfg.Seed, WorldSize: t.world(), Data: data, Rows: r.n}
	if !cfg.Resume {
		return nil
	}
	if dir, err := LatestCheckpoint(cfg.OutDir); err != nil {
		return err
	} else if dir != "" {
		load := t.loadCheckpoint
		if isCustom(r.opt) {
			load = t.loadCustom
		}
		st, err := load(dir, r.opt)
		if err != nil {
			return err
		}
		if st.Seed != cfg.Seed {
			return fmt.Errorf("resume: %s was trained with seed %d, this run has %d", dir, st.Seed, cfg.Seed)
		}
		if st.WorldSize > 0 && st.WorldSize != t.world() {
			return fmt.Errorf("resume: %s was written by a run of %d processes, this run has %d: the data position counts global batches, so resume with %d", dir, st.WorldSize, t.world(), st.WorldSize)
		}
		if st.Data != "" && data != "" && st.Data != data {
			return fmt.Errorf("resume: %s was trained on other data (fingerprint %s, this run's %s): the saved data position means nothing here", dir, st.Data, data)
		}
		if st.Rows > 0 && st.Rows != r.n {
			return fmt.Errorf("resume: %s was trained on %d rows, this run has %d: the saved data position means nothing here", dir, st.Rows, r.n)
		}
		st.Data, st.Rows = data, r.n
		st.TotalSteps = r.total
		r.st, r.saved = st, st.Step
		cfg.Logger.Info("resumed", "checkpoint", dir, "step", st.Step, "epoch", st.Epoch)
	}
	if t.world() > 1 {
		// Only rank 0 writes checkpoints: a rank that cannot see them
		// (no shared file system) would start elsewhere and desync.
		// The steps are all equal when their sum and sum of squares
		// are those of equal steps.
		s := float64(r.st.Step)
		got, err := t.allReduce([]float64{s, s * s})
		if err != nil {
			return err
		}
		if w := float64(t.world()); got[0] != w*s || got[1] != w*s*s {
			return fmt.Errorf("resume: rank %d resumes at step %d but other ranks do not: every rank must see OutDir's checkpoints (%s), e.g. on a shared file system", t.rank(), r.st.Step, cfg.OutDir)
		}
	}
	return nil
}

// step runs one optimizer step. done reports that the ranks agreed to end
// the run early (ErrStop) before it.
func (r *run) step(ctx context.Context) (done bool, err error) {
	t, cfg, st := r.t, r.cfg, &r.st
	// The ranks agree on stopping through the step's first all-reduce,
	// so all of them stop after the same step and rank 0's checkpoint
	// is the state of every rank.
	cancel, finish := 0.0, 0.0
	if ctx.Err() != nil {
		cancel = 1
	}
	if r.stopAsked {
		finish = 1
	}
	stepStart := time.Now()
	base := st.Cursor * r.window
	micro := make([][]int, cfg.GradAccum)
	localUnits := 0
	for j := range micro {
		off := base + j*r.global + t.rank()*cfg.BatchSize
		micro[j] = r.order[off : off+cfg.BatchSize]
		localUnits += t.obj.Units(micro[j])
	}
	if d, ok := t.obj.(interface{ DataErr() error }); ok && d.DataErr() != nil {
		return false, r.failed(fmt.Errorf("train: step %d: %w", st.Step+1, d.DataErr()))
	}
	units, err := t.allReduce([]float64{float64(localUnits), cancel, finish})
	if err != nil {
		return false, r.failed(fmt.Errorf("train: step %d: %w", st.Step+1, err))
	}
	if units[1] > 0 {
		err := ctx.Err()
		if err == nil {
			err = fmt.Errorf("another rank was stopped: %w", context.Canceled)
		}
		if serr := r.save(); serr != nil {
			return false, errors.Join(err, serr)
		}
		return false, fmt.Errorf("train: stopped at step %d: %w", st.Step, err)
	}
	if units[2] > 0 {
		r.sum.Stopped = true
		return true, nil
	}
	if units[0] == 0 {
		return false, fmt.Errorf("train: step %d: no trained units in the whole window (all labels masked?)", st.Step+1)
	}
	// Dropout draws from a generator seeded per step, so a resumed run
	// draws what the uninterrupted one did.
	torchx.ManualSeed(cfg.Seed*1_000_003 + int64(st.Step)*7919 + int64(t.rank()))
	var lossSum float64
	var tokens int
	var extra map[string]float64
	err = guard(func() error {
		var err error
		lossSum, tokens, extra, err = r.forwardBackward(micro, units[0])
		return err
	})
	if err != nil {
		return false, r.failed(fmt.Errorf("train: step %d: %w", st.Step+1, err))
	}
	if math.IsNaN(lossSum) || math.IsInf(lossSum, 0) {
		return false, fmt.Errorf("train: step %d: loss is %v: %w; the last good checkpoint is %q", st.Step+1, lossSum, ErrNonFinite, r.sum.Checkpoint)
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
		return false, r.failed(fmt.Errorf("train: step %d: %w", st.Step+1, err))
	}
	lr := r.sched.LR(st.Step)
	norm, err := t.update(r.opt, lr, r.grads.grads())
	if errors.Is(err, ErrNonFinite) {
		return false, fmt.Errorf("train: step %d: %w; the last good checkpoint is %q", st.Step+1, err, r.sum.Checkpoint)
	}
	if err != nil {
		return false, err
	}
	r.opt.ZeroGrad()
	r.grads.reset()
	torchx.ReleaseFreeMemory()
	st.Step++
	st.Cursor++
	if st.Cursor == r.stepsPerEpoch {
		st.Epoch++
		st.Cursor = 0
		r.order = epochOrder(r.n, cfg.Seed, st.Epoch)
	}
	st.LR = lr
	st.Loss = vals[0] / units[0]
	st.Tokens += int64(vals[1])
	st.ElapsedS = r.elapsedBefore + time.Since(r.start).Seconds()
	rec := StepRecord{
		Step: st.Step, Epoch: float64(st.Epoch) + float64(st.Cursor)/float64(r.stepsPerEpoch),
		Loss: st.Loss, LR: lr, GradNorm: norm, Tokens: int(vals[1]),
		TokensPerS: vals[1] / time.Since(stepStart).Seconds(), ElapsedS: st.ElapsedS,
	}
	if len(keys) > 0 {
		rec.Extra = map[string]float64{}
		for i, k := range keys {
			rec.Extra[k] = vals[2+i] / units[0]
		}
	}
	if t.eval != nil && cfg.EvalEvery > 0 && (st.Step%cfg.EvalEvery == 0 || st.Step == r.total) {
		el, err := r.heldOutLoss()
		if err != nil {
			return false, fmt.Errorf("train: step %d: held-out loss: %w", st.Step, err)
		}
		rec.EvalLoss = &el
	}
	r.sum.Steps, r.sum.FinalLoss = st.Step, st.Loss
	if err := r.record(rec); err != nil {
		return false, err
	}
	if cfg.SaveEvery > 0 && st.Step%cfg.SaveEvery == 0 && st.Step < r.total {
		if err := r.save(); err != nil {
			return false, err
		}
	}
	return false, nil
}

// forwardBackward runs the step's micro-batches, forward and backward,
// collecting their gradients; it returns the summed loss, input tokens and
// metrics of this rank. The losses are summed on the device and read once
// per optimizer step: no host round-trip between micro-batches.
func (r *run) forwardBackward(micro [][]int, units float64) (float64, int, map[string]float64, error) {
	var lossAcc *ts.Tensor
	tokens := 0
	extra := map[string]float64{}
	devExtra := map[string]*ts.Tensor{}
	fail := func(err error) (float64, int, map[string]float64, error) {
		dropAll([]*ts.Tensor{lossAcc})
		for _, x := range devExtra {
			x.MustDrop()
		}
		return 0, 0, nil, err
	}
	for _, idx := range micro {
		l, err := r.t.obj.Loss(idx)
		if err != nil {
			return fail(err)
		}
		d := l.Sum.MustDetach(false)
		if lossAcc == nil {
			lossAcc = d.MustTotype(gotch.Double, true)
		} else {
			lossAcc = lossAcc.MustAdd(d, true)
			d.MustDrop()
		}
		scaled := l.Sum.MustDivScalar(ts.FloatScalar(units), false)
		err = l.backward(scaled)
		scaled.MustDrop()
		if err != nil {
			l.Release()
			return fail(fmt.Errorf("backward: %w", err))
		}
		r.grads.collect()
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
	for i, k := range devKeys {
		extra[k] += got[1+i]
	}
	return got[0], tokens, extra, nil
}

// failed ends the run with err, raised before the step's update: the
// parameters and the optimizer are still those of the last completed
// step, so a checkpoint of it is written first (unless ZeRO shards the
// optimizer: its checkpoint needs every rank, and the group may be
// broken).
func (r *run) failed(err error) error {
	r.opt.ZeroGrad()
	if _, zero := r.opt.(*zeroOptimizer); zero || r.st.Step == 0 || r.saved == r.st.Step {
		return err
	}
	if serr := r.save(); serr != nil {
		return errors.Join(err, serr)
	}
	if r.t.rank() == 0 {
		return fmt.Errorf("%w (checkpoint of step %d written: %s)", err, r.st.Step, r.sum.Checkpoint)
	}
	return err
}

// save writes a checkpoint of where the run stands and prunes old ones.
func (r *run) save() error {
	var export func(string) error
	if r.cfg.ExportCheckpoints {
		export = r.cfg.Export
	}
	save := r.t.saveCheckpoint
	if isCustom(r.opt) {
		save = r.t.saveCustom
	}
	dir, err := save(r.st, r.opt, export)
	if err != nil {
		return err
	}
	r.saved = r.st.Step // on every rank: a ZeRO checkpoint takes all of them
	if r.t.rank() != 0 {
		return nil
	}
	r.sum.Checkpoint = dir
	r.cfg.Logger.Info("checkpoint written", "dir", dir)
	return pruneCheckpoints(r.cfg.OutDir, r.cfg.KeepLast)
}

// heldOutLoss is the eval objective's loss, in evaluation mode.
func (r *run) heldOutLoss() (float64, error) {
	r.t.setTraining(false)
	defer r.t.setTraining(true)
	var el float64
	err := guard(func() error {
		var err error
		el, err = EvalLoss(r.t.eval, r.cfg.BatchSize)
		return err
	})
	return el, err
}

// finish writes the final checkpoint and exports OutDir/final.
func (r *run) finish() error {
	t, cfg := r.t, r.cfg
	isMain := t.rank() == 0
	if !cfg.NoFinalCheckpoint && r.saved != r.st.Step {
		if err := r.save(); err != nil {
			return err
		}
	}
	staging, err := t.prepareExport(r.opt, r.st.Step)
	if err != nil {
		return err
	}
	if staging != "" && isMain {
		defer os.RemoveAll(staging)
	}
	if !isMain || cfg.Export == nil {
		return nil
	}
	final := filepath.Join(cfg.OutDir, "final")
	tmp := final + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := cfg.Export(tmp); err != nil {
		return fmt.Errorf("train: exporting the final model: %w", err)
	}
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	r.sum.Final = final
	return nil
}

// close releases what the run holds: the gradient sums, the optimizer's
// state, the recorders; the model goes back to evaluation mode.
func (r *run) close() {
	r.t.setTraining(false)
	if r.grads != nil {
		r.grads.release()
	}
	detachUnits(r.opt)
	dropOptimizerState(r.opt)
	closeRecorders(r.recs)
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
// without gradients. It runs the model in whatever mode it is in: Run
// switches it to evaluation mode for the held-out loss (no dropout).
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
