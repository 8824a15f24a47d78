package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch/ts"
)

// Optimizer updates trainable parameters from one optimizer step's
// gradients. AdamW is the default (TrainerConfig.NewOptimizer nil), and
// the only one ZeRO shards.
type Optimizer interface {
	// Params are the parameters it updates, in the order of StepGrads'
	// gradients.
	Params() []Param
	// StepGrads applies one update with learning rate lr; grads holds one
	// fp32 gradient per parameter (already reduced over the ranks and
	// clipped), nil for a parameter no example reached. The gradients are
	// the trainer's.
	StepGrads(lr float64, grads []*ts.Tensor) error
	// ZeroGrad clears the parameters' gradients.
	ZeroGrad()
	// Steps is the number of updates taken.
	Steps() int
}

// OptimizerState is what an Optimizer with state (moments, step counts)
// implements so its checkpoints resume exactly: SaveState writes the state
// into a checkpoint folder, LoadState reads it back, and Drop frees it
// when Run returns. A custom optimizer without it is checkpointed by its
// parameters alone.
type OptimizerState interface {
	SaveState(dir string) error
	LoadState(dir string) error
	Drop()
}

// customStateFile is the trainer state of a checkpoint of a custom
// optimizer.
type customCheckpoint struct {
	trainerState
	OptimizerSteps int    `json:"optimizer_steps"`
	Optimizer      string `json:"optimizer"` // its Go type, so a resume with another one is refused
}

// isCustom tells whether opt came from TrainerConfig.NewOptimizer (other
// than AdamW, which the trainer checkpoints itself).
func isCustom(opt optimizer) bool {
	switch opt.(type) {
	case *AdamW, *zeroOptimizer:
		return false
	}
	return true
}

// newRunOptimizer is TrainerConfig.NewOptimizer's optimizer, or AdamW
// (sharded under ZeroStage).
func (t *Trainer) newRunOptimizer() (optimizer, error) {
	if t.cfg.NewOptimizer == nil {
		return t.newOptimizer()
	}
	if t.cfg.ZeroStage != 0 {
		return nil, errors.New("train: ZeroStage shards AdamW only; leave NewOptimizer nil")
	}
	var trainable []Param
	for _, p := range t.params {
		if p.Trainable {
			trainable = append(trainable, p)
		}
	}
	opt, err := t.cfg.NewOptimizer(trainable)
	if err != nil {
		return nil, fmt.Errorf("train: NewOptimizer: %w", err)
	}
	return opt, nil
}

// saveCustom writes a checkpoint of a custom optimizer's run on rank 0: the
// parameters, the optimizer's own state when it has one, the trainer
// state.
func (t *Trainer) saveCustom(st trainerState, opt optimizer, export func(string) error) (string, error) {
	if t.rank() != 0 {
		return "", nil
	}
	final := filepath.Join(t.cfg.OutDir, checkpointPrefix+strconv.Itoa(st.Step))
	tmp, err := os.MkdirTemp(t.cfg.OutDir, ".tmp-"+checkpointPrefix)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	var names []string
	var tensors []*ts.Tensor
	for _, p := range opt.Params() {
		names, tensors = append(names, p.Name), append(tensors, p.T)
	}
	if err := writeTensors(filepath.Join(tmp, paramsFile), names, tensors); err != nil {
		return fail(err)
	}
	if s, ok := opt.(OptimizerState); ok {
		if err := s.SaveState(tmp); err != nil {
			return fail(fmt.Errorf("optimizer state: %w", err))
		}
	}
	if err := publishCheckpoint(tmp, final, customCheckpoint{st, opt.Steps(), fmt.Sprintf("%T", opt)}, export); err != nil {
		return fail(err)
	}
	return final, nil
}

// loadCustom restores a checkpoint written by saveCustom.
func (t *Trainer) loadCustom(dir string, opt optimizer) (trainerState, error) {
	var st customCheckpoint
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return trainerState{}, fmt.Errorf("resume: %s: %w", filepath.Join(dir, stateFile), err)
	}
	if want := fmt.Sprintf("%T", opt); st.Optimizer != want {
		return trainerState{}, fmt.Errorf("resume: %s was trained with optimizer %q, this run has %s", dir, st.Optimizer, want)
	}
	pf, err := safetensors.OpenFile(filepath.Join(dir, paramsFile))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: %w", err)
	}
	defer pf.Close()
	for _, p := range opt.Params() {
		vals, err := pf.ReadFloat32(p.Name)
		if err == nil {
			err = loadInto(p.T, vals)
		}
		if err != nil {
			return trainerState{}, fmt.Errorf("resume: %s: %w", p.Name, err)
		}
	}
	if s, ok := opt.(OptimizerState); ok {
		if err := s.LoadState(dir); err != nil {
			return trainerState{}, fmt.Errorf("resume: %s: optimizer state: %w", dir, err)
		}
	}
	return st.trainerState, nil
}
