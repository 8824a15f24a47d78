package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Files of a training checkpoint (OUT/checkpoint-STEP/).
const (
	checkpointPrefix = "checkpoint-"
	paramsFile       = "trainable.safetensors" // trainable parameters, fp32, by Param name
	optimizerFile    = "optimizer.safetensors" // AdamW moments (and master weights)
	stateFile        = "trainer_state.json"
)

// trainerState is where a run stands: enough, with the parameters and the
// optimizer state, to continue exactly where it stopped.
type trainerState struct {
	Step       int     `json:"step"`        // optimizer steps done
	Epoch      int     `json:"epoch"`       // current epoch (0-based)
	Cursor     int     `json:"cursor"`      // windows of the current epoch done
	TotalSteps int     `json:"total_steps"` // planned optimizer steps
	Seed       int64   `json:"seed"`
	WorldSize  int     `json:"world_size"`
	Tokens     int64   `json:"tokens"`    // input tokens seen so far, all ranks
	ElapsedS   float64 `json:"elapsed_s"` // training time before this checkpoint
	LR         float64 `json:"lr"`        // learning rate of the last step
	Loss       float64 `json:"loss"`      // loss of the last step
	// The data position is Epoch and Cursor over Rows rows in the order
	// epochOrder draws; Data fingerprints the rows when the objective can
	// (a token store), so a resume on other data is refused.
	Rows int    `json:"rows,omitempty"`
	Data string `json:"data,omitempty"`
}

// tensorF32 returns t's values as fp32 bytes and its shape.
func tensorF32(t *ts.Tensor) ([]byte, []int64, error) {
	shape, err := t.Size()
	if err != nil {
		return nil, nil, err
	}
	var vals []float32
	var cerr error
	torchx.NoGrad(func() {
		c := t.MustDetach(false).MustTo(gotch.CPU, true).MustTotype(gotch.Float, true).MustContiguous(true)
		defer c.MustDrop()
		vals = make([]float32, c.Numel())
		cerr = c.CopyData(vals, uint(len(vals)))
	})
	if cerr != nil {
		return nil, nil, cerr
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), 4*len(vals)), shape, nil
}

// loadInto copies the fp32 values vals into t (any dtype, any device).
func loadInto(t *ts.Tensor, vals []float32) error {
	shape, err := t.Size()
	if err != nil {
		return err
	}
	if int(t.Numel()) != len(vals) {
		return fmt.Errorf("%d values for a tensor of shape %v", len(vals), shape)
	}
	dev, err := t.Device()
	if err != nil {
		return err
	}
	torchx.NoGrad(func() {
		src := ts.MustOfSlice(vals).MustView(shape, true).MustTotype(t.DType(), true).MustTo(dev, true)
		t.Copy_(src)
		src.MustDrop()
	})
	return nil
}

func writeTensors(path string, names []string, tensors []*ts.Tensor) error {
	srcs := make([]safetensors.Source, len(names))
	for i := range names {
		t := tensors[i]
		shape, err := t.Size()
		if err != nil {
			return err
		}
		srcs[i] = safetensors.Source{
			Tensor: safetensors.Tensor{Name: names[i], DType: safetensors.F32, Shape: shape},
			Data: func() ([]byte, error) {
				b, _, err := tensorF32(t)
				return b, err
			},
		}
	}
	return safetensors.WriteFile(path, srcs, map[string]string{"format": "pt"})
}

// saveCheckpoint writes a checkpoint atomically: into a temporary folder,
// renamed into place when complete, so a crash never leaves a half-written
// checkpoint under the final name.
func saveCheckpoint(outDir string, st trainerState, opt *AdamW, export func(dir string) error) (string, error) {
	final := filepath.Join(outDir, checkpointPrefix+strconv.Itoa(st.Step))
	tmp, err := os.MkdirTemp(outDir, ".tmp-"+checkpointPrefix)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	params := opt.Params()
	names := make([]string, len(params))
	tensors := make([]*ts.Tensor, len(params))
	var onames []string
	var otensors []*ts.Tensor
	for i, p := range params {
		names[i], tensors[i] = p.Name, p.T
		onames = append(onames, "exp_avg."+p.Name, "exp_avg_sq."+p.Name)
		otensors = append(otensors, opt.m[i], opt.v[i])
		if opt.master[i] != nil {
			onames = append(onames, "master."+p.Name)
			otensors = append(otensors, opt.master[i])
		}
	}
	if err := writeTensors(filepath.Join(tmp, paramsFile), names, tensors); err != nil {
		return fail(err)
	}
	if err := writeTensors(filepath.Join(tmp, optimizerFile), onames, otensors); err != nil {
		return fail(err)
	}
	var pSteps []int
	for _, n := range opt.pSteps {
		if n != opt.steps {
			pSteps = opt.pSteps
			break
		}
	}
	state := struct {
		trainerState
		OptimizerSteps int   `json:"optimizer_steps"`
		ParamSteps     []int `json:"param_steps,omitempty"`
	}{st, opt.Steps(), pSteps}
	if err := publishCheckpoint(tmp, final, state, export); err != nil {
		return fail(err)
	}
	return final, nil
}

// publishCheckpoint completes a checkpoint written into the staging folder
// tmp: the trainer state as JSON, the exported model, then the rename to
// final, so a checkpoint folder is either whole or absent.
func publishCheckpoint(tmp, final string, state any, export func(dir string) error) error {
	b, _ := json.MarshalIndent(state, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, stateFile), b, 0o644); err != nil {
		return err
	}
	if export != nil {
		if err := export(tmp); err != nil {
			return fmt.Errorf("exporting the model: %w", err)
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// loadCheckpoint restores parameters, optimizer state and trainer state
// from dir.
func loadCheckpoint(dir string, opt *AdamW) (trainerState, error) {
	var st struct {
		trainerState
		OptimizerSteps int   `json:"optimizer_steps"`
		ParamSteps     []int `json:"param_steps"`
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return trainerState{}, fmt.Errorf("resume: %s: %w", filepath.Join(dir, stateFile), err)
	}
	pf, err := safetensors.OpenFile(filepath.Join(dir, paramsFile))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: %w", err)
	}
	defer pf.Close()
	of, err := safetensors.OpenFile(filepath.Join(dir, optimizerFile))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: %w", err)
	}
	defer of.Close()
	load := func(f *safetensors.File, name string, t *ts.Tensor) error {
		vals, err := f.ReadFloat32(name)
		if err != nil {
			return fmt.Errorf("resume: %s: %w", name, err)
		}
		if err := loadInto(t, vals); err != nil {
			return fmt.Errorf("resume: %s: %w", name, err)
		}
		return nil
	}
	for i, p := range opt.Params() {
		if err := load(pf, p.Name, p.T); err != nil {
			return trainerState{}, err
		}
		if err := load(of, "exp_avg."+p.Name, opt.m[i]); err != nil {
			return trainerState{}, err
		}
		if err := load(of, "exp_avg_sq."+p.Name, opt.v[i]); err != nil {
			return trainerState{}, err
		}
		if opt.master[i] != nil {
			if err := load(of, "master."+p.Name, opt.master[i]); err != nil {
				return trainerState{}, err
			}
		}
	}
	opt.steps = st.OptimizerSteps
	switch {
	case st.ParamSteps == nil:
		for i := range opt.pSteps {
			opt.pSteps[i] = st.OptimizerSteps
		}
	case len(st.ParamSteps) != len(opt.pSteps):
		return trainerState{}, fmt.Errorf("resume: %s: param_steps has %d entries for %d parameters", filepath.Join(dir, stateFile), len(st.ParamSteps), len(opt.pSteps))
	default:
		copy(opt.pSteps, st.ParamSteps)
	}
	return st.trainerState, nil
}

// LatestCheckpoint returns the checkpoint of outDir with the highest step,
// or "" when there is none.
func LatestCheckpoint(outDir string) (string, error) {
	steps, err := checkpointSteps(outDir)
	if err != nil || len(steps) == 0 {
		return "", err
	}
	return filepath.Join(outDir, checkpointPrefix+strconv.Itoa(steps[len(steps)-1])), nil
}

func checkpointSteps(outDir string) ([]int, error) {
	entries, err := os.ReadDir(outDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), checkpointPrefix) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), checkpointPrefix))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(outDir, e.Name(), stateFile)); err == nil {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

// pruneCheckpoints removes all but the newest keep checkpoints.
func pruneCheckpoints(outDir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	steps, err := checkpointSteps(outDir)
	if err != nil {
		return err
	}
	for len(steps) > keep {
		if err := os.RemoveAll(filepath.Join(outDir, checkpointPrefix+strconv.Itoa(steps[0]))); err != nil {
			return err
		}
		steps = steps[1:]
	}
	return nil
}
