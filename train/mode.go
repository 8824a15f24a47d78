package train

import "github.com/sugarme/gotch/ts"

// SetTraining switches the objective's model between training mode (LoRA
// dropout on) and evaluation mode; Run calls it.
func (o *LMObjective) SetTraining(on bool) { o.Model.SetTraining(on) }

// setTraining switches the run's model to training or evaluation mode:
// TrainerConfig.Model and every objective with a SetTraining method.
func (t *Trainer) setTraining(on bool) {
	type switcher interface{ SetTraining(bool) }
	for _, x := range []any{t.obj, t.eval} {
		if s, ok := x.(switcher); ok {
			s.SetTraining(on)
		}
	}
	if t.cfg.Model != nil {
		t.cfg.Model.SetTraining(on)
	}
}

// dropOptimizerState frees the optimizer's state (AdamW's moments and fp32
// master weights) when a run ends. A stage-3 ZeRO optimizer keeps its shards of weights,
// master weights and gradient sums: the model stays sharded and hooked
// to it.
func dropOptimizerState(opt optimizer) {
	switch o := opt.(type) {
	case *AdamW:
		o.Drop()
	case OptimizerState:
		o.Drop()
	case *zeroOptimizer:
		state := [][]*ts.Tensor{o.m, o.v}
		if o.stage < 3 {
			state = append(state, o.master, o.gacc)
		}
		for _, s := range state {
			dropAll(s)
			clear(s)
		}
	}
}
