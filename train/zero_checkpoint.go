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

// optimizer is what the training loop needs of its optimizer: AdamW, or
// AdamW sharded over the group (ZeRO).
type optimizer interface {
	Params() []Param
	StepGrads(lr float64, grads []*ts.Tensor) error
	ZeroGrad()
	Steps() int
}

// newOptimizer is AdamW over the trainer's parameters, sharded when
// TrainerConfig.ZeroStage asks for it.
func (t *Trainer) newOptimizer() (optimizer, error) {
	if t.cfg.ZeroStage == 0 {
		if preloaded(t.cfg.Model) != nil {
			return nil, errors.New("train: the model was loaded sharded (LoadModelSharded): train it with ZeroStage 3")
		}
		if t.cfg.OffloadOptimizer {
			return nil, errors.New("train: OffloadOptimizer needs ZeroStage 1 or 2")
		}
		return NewAdamW(t.params, t.cfg.AdamW)
	}
	if t.cfg.ZeroStage == 3 && t.cfg.ExportCheckpoints {
		return nil, errors.New("train: ExportCheckpoints is not available with ZeroStage 3 (the parameters are sharded during training; final/ is exported)")
	}
	return newZeroOptimizer(t.params, t.cfg.AdamW, t.cfg.ZeroStage, t.cfg.Comm, t.cfg.OffloadOptimizer, t.cfg.Model)
}

// zeroShardFile is rank's optimizer shard in a checkpoint of a world-rank
// run.
func zeroShardFile(rank, world int) string {
	return fmt.Sprintf("optimizer-zero-rank%d-of-%d.safetensors", rank, world)
}

// zeroPieceName names a piece's tensor in a shard file: the parameter's
// name and the piece's element range in its flattening.
func zeroPieceName(kind, param string, pc zeroPiece) string {
	return fmt.Sprintf("%s.%s[%d:%d]", kind, param, pc.start, pc.start+pc.n)
}

// saveCheckpoint writes a checkpoint of the run. Without sharding rank 0
// writes it alone. With ZeRO every rank writes its optimizer shard into a
// staging folder named by the step; the ranks agree (one all-reduce) that
// all shards are written, and rank 0 adds the parameters and the trainer
// state and renames the folder into place. It returns the checkpoint's
// folder on rank 0, "" elsewhere.
func (t *Trainer) saveCheckpoint(st trainerState, opt optimizer, export func(string) error) (string, error) {
	z, ok := opt.(*zeroOptimizer)
	if !ok {
		if t.rank() != 0 {
			return "", nil
		}
		return saveCheckpoint(t.cfg.OutDir, st, opt.(*AdamW), export)
	}
	final := filepath.Join(t.cfg.OutDir, checkpointPrefix+strconv.Itoa(st.Step))
	stage := filepath.Join(t.cfg.OutDir, ".zero-"+checkpointPrefix+strconv.Itoa(st.Step))
	if t.rank() == 0 {
		os.RemoveAll(stage)
	}
	if _, err := t.allReduce([]float64{0}); err != nil { // staging folder cleared
		return "", err
	}
	werr := os.MkdirAll(stage, 0o755)
	if werr == nil {
		werr = z.writeShard(filepath.Join(stage, zeroShardFile(t.rank(), t.world())))
	}
	failed := 0.0
	if werr != nil {
		failed = 1
	}
	agree, err := t.allReduce([]float64{failed})
	if err != nil {
		return "", errors.Join(werr, err)
	}
	if werr != nil {
		return "", fmt.Errorf("checkpoint %s: rank %d's optimizer shard: %w", final, t.rank(), werr)
	}
	if agree[0] > 0 {
		return "", fmt.Errorf("checkpoint %s: another rank failed to write its optimizer shard", final)
	}
	if t.rank() != 0 {
		return "", nil
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(stage)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	names := make([]string, len(z.params))
	tensors := make([]*ts.Tensor, len(z.params))
	for i, p := range z.params {
		names[i], tensors[i] = p.Name, p.T
	}
	if err := z.writeZeroLayout(stage, t.cfg.Model); err != nil { // for ConsolidateZeroCheckpoint
		return fail(err)
	}
	if z.stage < 3 {
		// Stage 3's parameters are in the ranks' shard files.
		if err := writeTensors(filepath.Join(stage, paramsFile), names, tensors); err != nil {
			return fail(err)
		}
	}
	state := struct {
		trainerState
		OptimizerSteps int   `json:"optimizer_steps"`
		ParamSteps     []int `json:"param_steps"`
		ZeroStage      int   `json:"zero_stage"`
	}{st, z.steps, z.pSteps, z.stage}
	if err := publishCheckpoint(stage, final, state, export); err != nil {
		return fail(err)
	}
	return final, nil
}

// writeShard writes this rank's moments and master pieces.
func (z *zeroOptimizer) writeShard(path string) error {
	var names []string
	var tensors []*ts.Tensor
	for k, pc := range z.pieces[z.rank] {
		name := z.params[pc.param].Name
		names = append(names, zeroPieceName("exp_avg", name, pc), zeroPieceName("exp_avg_sq", name, pc))
		tensors = append(tensors, z.m[k], z.v[k])
		if z.master[k] != nil {
			names = append(names, zeroPieceName("master", name, pc))
			tensors = append(tensors, z.master[k])
		}
		if z.stage == 3 {
			names = append(names, zeroPieceName("weight", name, pc))
			tensors = append(tensors, z.wshard[k])
		}
	}
	return writeTensors(path, names, tensors)
}

// loadCheckpoint restores a checkpoint written by saveCheckpoint.
func (t *Trainer) loadCheckpoint(dir string, opt optimizer) (trainerState, error) {
	z, ok := opt.(*zeroOptimizer)
	if !ok {
		if _, err := os.Stat(filepath.Join(dir, optimizerFile)); errors.Is(err, os.ErrNotExist) {
			if _, zerr := os.Stat(filepath.Join(dir, zeroShardFile(0, 1))); zerr == nil || hasZeroShards(dir) {
				return trainerState{}, fmt.Errorf("resume: %s holds a ZeRO-sharded optimizer: resume with a ZeroStage of 1 or 2 and the same number of processes", dir)
			}
		}
		return loadCheckpoint(dir, opt.(*AdamW))
	}
	var st struct {
		trainerState
		OptimizerSteps int   `json:"optimizer_steps"`
		ParamSteps     []int `json:"param_steps"`
		ZeroStage      int   `json:"zero_stage"`
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return trainerState{}, fmt.Errorf("resume: %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.ZeroStage == 0 {
		return trainerState{}, fmt.Errorf("resume: %s was written without ZeRO sharding: resume it with ZeroStage 0", dir)
	}
	if st.WorldSize != z.world {
		return trainerState{}, fmt.Errorf("resume: %s was written by a run of %d processes, this run has %d: its optimizer is sharded %d ways, so resume with %d", dir, st.WorldSize, z.world, st.WorldSize, st.WorldSize)
	}
	if len(st.ParamSteps) != len(z.pSteps) {
		return trainerState{}, fmt.Errorf("resume: %s: param_steps has %d entries for %d parameters", filepath.Join(dir, stateFile), len(st.ParamSteps), len(z.pSteps))
	}
	if (st.ZeroStage == 3) != (z.stage == 3) {
		return trainerState{}, fmt.Errorf("resume: %s was written with ZeroStage %d, this run has %d: stage 3 keeps the parameters in the shards, so resume stage 3 with stage 3 and 1 or 2 with 1 or 2", dir, st.ZeroStage, z.stage)
	}
	sf, err := safetensors.OpenFile(filepath.Join(dir, zeroShardFile(z.rank, z.world)))
	if err != nil {
		return trainerState{}, fmt.Errorf("resume: rank %d's optimizer shard: %w", z.rank, err)
	}
	defer sf.Close()
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
	if z.stage < 3 {
		pf, err := safetensors.OpenFile(filepath.Join(dir, paramsFile))
		if err != nil {
			return trainerState{}, fmt.Errorf("resume: %w", err)
		}
		defer pf.Close()
		for _, p := range z.params {
			if err := load(pf, p.Name, p.T); err != nil {
				return trainerState{}, err
			}
		}
	}
	for k, pc := range z.pieces[z.rank] {
		name := z.params[pc.param].Name
		if err := load(sf, zeroPieceName("exp_avg", name, pc), z.m[k]); err != nil {
			return trainerState{}, err
		}
		if err := load(sf, zeroPieceName("exp_avg_sq", name, pc), z.v[k]); err != nil {
			return trainerState{}, err
		}
		if z.master[k] != nil {
			if err := load(sf, zeroPieceName("master", name, pc), z.master[k]); err != nil {
				return trainerState{}, err
			}
		}
		if z.stage == 3 {
			if err := load(sf, zeroPieceName("weight", name, pc), z.wshard[k]); err != nil {
				return trainerState{}, err
			}
		}
	}
	z.steps = st.OptimizerSteps
	copy(z.pSteps, st.ParamSteps)
	return st.trainerState, nil
}

func hasZeroShards(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "optimizer-zero-rank*-of-*.safetensors"))
	return len(m) > 0
}
