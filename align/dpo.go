package align

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch/ts"
)

// DPOConfig configures DPO. The zero value means the defaults.
type DPOConfig struct {
	// Beta scales the implicit reward; 0 means the default 0.1 (TRL's).
	Beta float64
}

func (c *DPOConfig) ensureDefaults() {
	if c.Beta == 0 {
		c.Beta = 0.1
	}
}

// RefLogProbs are a pair's summed response log-probabilities under the
// reference model.
type RefLogProbs struct {
	Chosen   float64 `json:"chosen"`
	Rejected float64 `json:"rejected"`
}

// DPO is direct preference optimisation with the sigmoid loss (Rafailov et
// al. 2023, TRL's default) as a train.Objective. Its unit is the pair; the
// loss of a pair is
//
//	−log σ(β·((πc − refc) − (πr − refr)))
//
// with π and ref the summed log-probabilities of the response tokens under
// the policy and the reference model. The reference values are computed
// once (ComputeReference) and kept per pair, so the reference model need
// not stay in memory.
type DPO struct {
	Pairs     []tokenize.PreferenceExample
	PadID     int
	Config    DPOConfig
	Reference []RefLogProbs // per pair; filled by ComputeReference or loaded
	model     *train.Model
	forward   forwardFunc
	auxCoef   float64
}

// NewDPO returns the DPO objective over pairs for the policy m. Call
// ComputeReference (or set Reference) before training.
func NewDPO(m *train.Model, pairs []tokenize.PreferenceExample, padID int, cfg DPOConfig) (*DPO, error) {
	cfg.ensureDefaults()
	if cfg.Beta <= 0 || math.IsNaN(cfg.Beta) || math.IsInf(cfg.Beta, 0) {
		return nil, fmt.Errorf("align: DPO beta %v: want a finite value > 0", cfg.Beta)
	}
	if err := CheckPairs(pairs); err != nil {
		return nil, err
	}
	return &DPO{Pairs: pairs, PadID: padID, Config: cfg, model: m, forward: m.Forward, auxCoef: m.Config.RouterAuxLossCoef}, nil
}

// Len is the number of pairs.
func (o *DPO) Len() int { return len(o.Pairs) }

// Units is the number of pairs in idx.
func (o *DPO) Units(idx []int) int { return len(idx) }

// ComputeReference scores every pair once with the reference model: ref
// when not nil, otherwise the policy itself as it is now — with its LoRA
// adapters switched off, or, fully fine-tuned, before its first update
// (TRL's copy of the initial model). Dropout lives only in LoRA adapters,
// so the reference scores are deterministic.
func (o *DPO) ComputeReference(ctx context.Context, ref *train.Model, batchSize int) error {
	fwd, m := o.forward, o.model
	if ref == nil && fwd == nil {
		return errors.New("align: DPO has no model; build it with NewDPO")
	}
	switch {
	case ref != nil:
		fwd, m = ref.Forward, ref
	case o.model != nil && o.model.LoRA() != nil:
		o.model.SetAdaptersEnabled(false)
		defer o.model.SetAdaptersEnabled(true)
	}
	refs, err := referenceLogProbs(ctx, m, fwd, o.Pairs, o.PadID, batchSize)
	if err != nil {
		return err
	}
	o.Reference = refs
	return nil
}

// referenceLogProbs scores pairs without gradients, batchSize pairs per
// forward pass: through m's chunked head when m (may be nil) has
// activation checkpointing on, so long sequences never hold full logits,
// else through fwd.
func referenceLogProbs(ctx context.Context, m *train.Model, fwd forwardFunc, pairs []tokenize.PreferenceExample, padID, batchSize int) ([]RefLogProbs, error) {
	if batchSize <= 0 {
		batchSize = 1
	}
	out := make([]RefLogProbs, len(pairs))
	var err error
	torchx.NoGrad(func() {
		for i := 0; i < len(pairs) && err == nil; i += batchSize {
			if err = ctx.Err(); err != nil {
				return
			}
			idx := make([]int, 0, batchSize)
			for j := i; j < min(i+batchSize, len(pairs)); j++ {
				idx = append(idx, j)
			}
			var b *pairBatch
			if b, err = newPairBatch(pairs, idx, padID); err != nil {
				return
			}
			var resp, aux *ts.Tensor
			var pass *train.Pass
			resp, _, aux, pass, err = logps(m, fwd, b, false)
			b.drop()
			if pass != nil {
				pass.Drop()
			}
			if err != nil {
				return
			}
			if aux != nil {
				aux.MustDrop()
			}
			v := torchx.Float64s(resp, true)
			for k, j := range idx {
				out[j] = RefLogProbs{Chosen: v[k], Rejected: v[len(idx)+k]}
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("align: reference log-probs: %w", err)
	}
	return out, nil
}

// Loss runs chosen and rejected sequences of pairs idx through the policy
// in one batch and returns the summed DPO loss with the summed metrics
// rewards_chosen and rewards_rejected (β·(π − ref)), reward_margin,
// reward_accuracy, logps_chosen and logps_rejected (summed log-probs).
func (o *DPO) Loss(idx []int) (*train.Loss, error) {
	if o.forward == nil {
		return nil, errors.New("align: DPO has no model; build it with NewDPO")
	}
	if len(o.Reference) != len(o.Pairs) {
		return nil, errors.New("align: DPO has no reference log-probs; call ComputeReference first")
	}
	b, err := newPairBatch(o.Pairs, idx, o.PadID)
	if err != nil {
		return nil, err
	}
	defer b.drop()
	resp, _, aux, pass, err := logps(o.model, o.forward, b, false)
	if err != nil {
		return nil, err
	}
	ref := make([]float64, 2*b.P)
	for k, j := range idx {
		ref[k], ref[b.P+k] = o.Reference[j].Chosen, o.Reference[j].Rejected
	}
	refT := vecOf(ref, resp.DType(), resp.MustDevice())
	pc, pr := halves(resp, b.P)
	rc, rr := halves(refT, b.P)
	perPair, rewC, rewR := dpoLoss(pc, pr, rc, rr, o.Config.Beta)
	for _, t := range []*ts.Tensor{rc, rr, refT, resp} {
		t.MustDrop()
	}
	dt := perPair.DType()
	sum := perPair.MustSum(dt, true)
	m := map[string]*ts.Tensor{}
	if aux != nil {
		m["aux_loss"] = aux.MustDetach(false).MustMulScalar(ts.FloatScalar(float64(b.P)), true)
		w := aux.MustMulScalar(ts.FloatScalar(o.auxCoef*float64(b.P)), true)
		sum = sum.MustAdd(w, true)
		w.MustDrop()
	}
	// The metrics stay on the device: the trainer reads them once per
	// optimizer step.
	total := func(t *ts.Tensor) *ts.Tensor { return t.MustDetach(false).MustSum(dt, true) }
	m["rewards_chosen"], m["rewards_rejected"] = total(rewC), total(rewR)
	m["reward_margin"] = m["rewards_chosen"].MustSub(m["rewards_rejected"], false)
	m["reward_accuracy"] = rewC.MustGtTensor(rewR, false).MustSum(dt, true)
	m["logps_chosen"], m["logps_rejected"] = total(pc), total(pr)
	for _, t := range []*ts.Tensor{rewC, rewR, pc, pr} {
		t.MustDrop()
	}
	return &train.Loss{Sum: sum, Tokens: b.tokens, DeviceMetrics: m, Pass: pass}, nil
}

// dpoLoss returns the per-pair sigmoid DPO loss and the implicit rewards
// β·(π − ref) of each side. The inputs are not freed.
func dpoLoss(pc, pr, rc, rr *ts.Tensor, beta float64) (loss, rewC, rewR *ts.Tensor) {
	rewC = pc.MustSub(rc, false).MustMulScalar(ts.FloatScalar(beta), true)
	rewR = pr.MustSub(rr, false).MustMulScalar(ts.FloatScalar(beta), true)
	loss = rewC.MustSub(rewR, false).MustLogSigmoid(true).MustNeg(true)
	return loss, rewC, rewR
}
