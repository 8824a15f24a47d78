package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
)

// Recorder sees a training run, the way gonum's optimize.Recorder sees an
// optimisation: Init once before the first step, Record after every
// optimizer step (after the held-out loss of that step, before its
// checkpoint). A Record that returns ErrStop ends the run cleanly after
// that step — on every rank of a group, which agree at the next step —
// with its final checkpoint and export, as if its steps were done; any
// other error ends the run with that error.
type Recorder interface {
	Init(RunInfo) error
	Record(StepRecord) error
}

// RunInfo is what a recorder learns of a run before its first step.
type RunInfo struct {
	OutDir        string
	TotalSteps    int // optimizer steps planned
	StartStep     int // steps already done (a resumed run)
	StepsPerEpoch int
	Rank, World   int // place in a data-parallel group; 0 and 1 alone
}

// ErrStop, returned by a Recorder, ends the run early and cleanly
// (Summary.Stopped).
var ErrStop = errors.New("train: stop requested by a recorder")

// RecordFunc is a Recorder that calls itself with every step's record.
type RecordFunc func(StepRecord) error

// Init does nothing.
func (RecordFunc) Init(RunInfo) error { return nil }

// Record calls f.
func (f RecordFunc) Record(r StepRecord) error { return f(r) }

// initRecorders builds the run's recorders — on rank 0 metrics.jsonl,
// the progress bar and the log; on every rank TrainerConfig.Recorders and
// OnStep — and initialises them.
func (r *run) initRecorders() error {
	cfg := r.cfg
	if r.t.rank() == 0 {
		r.recs = append(r.recs, &metricsWriter{})
		if cfg.Progress != nil {
			r.recs = append(r.recs, &progressRecorder{w: cfg.Progress})
		}
		r.recs = append(r.recs, &logRecorder{log: cfg.Logger, every: cfg.LogEvery})
	}
	r.recs = append(r.recs, cfg.Recorders...)
	if cfg.OnStep != nil {
		r.recs = append(r.recs, RecordFunc(func(s StepRecord) error { cfg.OnStep(s); return nil }))
	}
	info := RunInfo{OutDir: cfg.OutDir, TotalSteps: r.total, StartStep: r.st.Step, StepsPerEpoch: r.stepsPerEpoch, Rank: r.t.rank(), World: r.t.world()}
	for _, rec := range r.recs {
		if err := rec.Init(info); err != nil {
			return fmt.Errorf("train: recorder %T: %w", rec, err)
		}
	}
	return nil
}

// record gives rec to every recorder; ErrStop asks the run to end after
// this step.
func (r *run) record(rec StepRecord) error {
	for _, x := range r.recs {
		err := x.Record(rec)
		switch {
		case errors.Is(err, ErrStop):
			r.stopAsked = true
		case err != nil:
			return fmt.Errorf("train: step %d: recorder %T: %w", rec.Step, x, err)
		}
	}
	return nil
}

// closeRecorders closes the recorders that hold something (a file).
func closeRecorders(recs []Recorder) {
	for _, x := range recs {
		if c, ok := x.(io.Closer); ok {
			c.Close()
		}
	}
}

// progressRecorder draws the progress bar.
type progressRecorder struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (p *progressRecorder) Init(info RunInfo) error {
	p.bar = progressbar.NewOptions(info.TotalSteps, progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("training"), progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	return p.bar.Set(info.StartStep)
}

func (p *progressRecorder) Record(r StepRecord) error {
	p.bar.Describe(fmt.Sprintf("loss %.4f lr %.2e", r.Loss, r.LR))
	return p.bar.Set(r.Step)
}

// logRecorder writes a step line every few steps (and the first and last)
// and every held-out loss.
type logRecorder struct {
	log   *slog.Logger
	every int
	total int
}

func (l *logRecorder) Init(info RunInfo) error { l.total = info.TotalSteps; return nil }

func (l *logRecorder) Record(r StepRecord) error {
	if r.EvalLoss != nil {
		l.log.Info("held-out loss", "step", r.Step, "eval_loss", *r.EvalLoss)
	}
	if r.Step%l.every == 0 || r.Step == 1 || r.Step == l.total {
		l.log.Info("step", "step", r.Step, "epoch", r.Epoch, "loss", r.Loss, "lr", r.LR, "grad_norm", r.GradNorm, "tokens_per_s", math.Round(r.TokensPerS))
	}
	return nil
}

// metricsWriter appends StepRecords to OutDir/metrics.jsonl. Opened for a
// resumed run, it first drops the lines of steps after the checkpoint, so
// the file tells the run's history once.
type metricsWriter struct {
	f *os.File
	w *bufio.Writer
}

func (m *metricsWriter) Init(info RunInfo) error {
	path := filepath.Join(info.OutDir, "metrics.jsonl")
	var keep [][]byte
	if b, err := os.ReadFile(path); err == nil && info.StartStep > 0 {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for sc.Scan() {
			var r struct{ Step int }
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Step <= info.StartStep {
				keep = append(keep, append([]byte(nil), sc.Bytes()...))
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	m.f, m.w = f, bufio.NewWriter(f)
	for _, l := range keep {
		m.w.Write(l)
		m.w.WriteByte('\n')
	}
	return m.w.Flush()
}

func (m *metricsWriter) Record(r StepRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	m.w.Write(b)
	m.w.WriteByte('\n')
	return m.w.Flush()
}

func (m *metricsWriter) Close() error {
	if m.f == nil {
		return nil
	}
	return m.f.Close()
}
