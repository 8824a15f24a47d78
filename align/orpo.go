package align

import (
	"errors"
	"fmt"
	"math"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch/ts"
)

// ORPOConfig configures ORPO. The zero value means the defaults.
type ORPOConfig struct {
	// Beta is the paper's λ, the weight of the odds-ratio term; 0 means
	// the default 0.1 (the paper's and TRL's).
	Beta float64
	// NLLOnPrompt makes the NLL term cover the prompt tokens of the chosen
	// sequence too, as TRL does. The default (false) trains the response
	// only, as LLaMA-Factory and the SFT stage do: the prompt is the user's
	// text, which the model should not learn to write.
	NLLOnPrompt bool
}

func (c *ORPOConfig) ensureDefaults() {
	if c.Beta == 0 {
		c.Beta = 0.1
	}
}

// ORPO is odds-ratio preference optimisation (Hong et al. 2024) as a
// train.Objective. Its unit is the pair; the loss of a pair is
//
//	−mean log p(chosen response) − λ·log σ(log-odds)
//	log-odds = (lc − lr) − (log(1 − e^lc) − log(1 − e^lr))
//
// where lc and lr are the mean log-probabilities of the chosen and rejected
// response tokens, both sequences running through the model in one batch.
// The NLL term is each pair's own mean (LLaMA-Factory's weighting; TRL
// averages over all chosen tokens of the batch instead, which weights long
// answers more). The log-odds are computed in fp32 with a stable
// log(1 − eˣ).
type ORPO struct {
	Pairs   []tokenize.PreferenceExample
	PadID   int
	Config  ORPOConfig
	forward forwardFunc
	model   *train.Model
	auxCoef float64
}

// NewORPO returns the ORPO objective over pairs for model m. Every pair must
// have a response token on both sides (CheckPairs, DropEmpty).
func NewORPO(m *train.Model, pairs []tokenize.PreferenceExample, padID int, cfg ORPOConfig) (*ORPO, error) {
	cfg.ensureDefaults()
	if cfg.Beta <= 0 || math.IsNaN(cfg.Beta) || math.IsInf(cfg.Beta, 0) {
		return nil, fmt.Errorf("align: ORPO beta %v: want a finite value > 0", cfg.Beta)
	}
	if err := CheckPairs(pairs); err != nil {
		return nil, err
	}
	return &ORPO{Pairs: pairs, PadID: padID, Config: cfg, forward: m.Forward, model: m, auxCoef: m.Config.RouterAuxLossCoef}, nil
}

// Len is the number of pairs.
func (o *ORPO) Len() int { return len(o.Pairs) }

// Units is the number of pairs in idx.
func (o *ORPO) Units(idx []int) int { return len(idx) }

// Loss runs chosen and rejected sequences of pairs idx through the model in
// one batch and returns the summed ORPO loss with the summed metrics
// rewards_chosen and rewards_rejected (λ × mean log-prob), reward_margin,
// reward_accuracy, log_odds, log_odds_ratio (log σ(log-odds)), nll_loss,
// logps_chosen and logps_rejected (mean log-probs).
func (o *ORPO) Loss(idx []int) (*train.Loss, error) {
	if o.forward == nil {
		return nil, errors.New("align: ORPO has no model; build it with NewORPO")
	}
	b, err := newPairBatch(o.Pairs, idx, o.PadID)
	if err != nil {
		return nil, err
	}
	defer b.drop()
	resp, all, aux, pass, err := logps(o.model, o.forward, b, o.Config.NLLOnPrompt)
	if err != nil {
		return nil, err
	}
	dt, dev := resp.DType(), resp.MustDevice()
	counts := vecOf(b.respCount, dt, dev)
	mean := resp.MustDiv(counts, true)
	counts.MustDrop()
	lc, lr := halves(mean, b.P)
	mean.MustDrop()
	var nll *ts.Tensor
	if all != nil {
		ac, ar := halves(all, b.P)
		all.MustDrop()
		ar.MustDrop()
		n := vecOf(b.allCount[:b.P], dt, dev)
		nll = ac.MustDiv(n, true).MustNeg(true)
		n.MustDrop()
	} else {
		nll = lc.MustNeg(false)
	}
	perPair, logOdds, ratio := orpoLoss(lc, lr, nll, o.Config.Beta)
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
	beta := o.Config.Beta
	total := func(t *ts.Tensor) *ts.Tensor { return t.MustDetach(false).MustSum(dt, true) }
	m["logps_chosen"], m["logps_rejected"] = total(lc), total(lr)
	m["rewards_chosen"] = m["logps_chosen"].MustMulScalar(ts.FloatScalar(beta), false)
	m["rewards_rejected"] = m["logps_rejected"].MustMulScalar(ts.FloatScalar(beta), false)
	m["reward_margin"] = m["rewards_chosen"].MustSub(m["rewards_rejected"], false)
	m["reward_accuracy"] = lc.MustGtTensor(lr, false).MustSum(dt, true)
	m["log_odds"], m["log_odds_ratio"], m["nll_loss"] = total(logOdds), total(ratio), total(nll)
	for _, t := range []*ts.Tensor{lc, lr, logOdds, ratio, nll} {
		t.MustDrop()
	}
	return &train.Loss{Sum: sum, Tokens: b.tokens, DeviceMetrics: m, Pass: pass}, nil
}

// orpoLoss returns the per-pair ORPO loss nll − β·log σ(log-odds), the
// log-odds and log σ(log-odds) from mean log-probs lc, lr and the NLL term.
// The inputs are not freed.
func orpoLoss(lc, lr, nll *ts.Tensor, beta float64) (loss, logOdds, ratio *ts.Tensor) {
	diff := lc.MustSub(lr, false)
	a, b := log1mexp(lc), log1mexp(lr)
	odds := a.MustSub(b, true)
	b.MustDrop()
	logOdds = diff.MustSub(odds, true)
	odds.MustDrop()
	ratio = logOdds.MustLogSigmoid(false)
	w := ratio.MustMulScalar(ts.FloatScalar(beta), false)
	loss = nll.MustSub(w, false)
	w.MustDrop()
	return loss, logOdds, ratio
}

// log1mexpCut is where log(1 − eˣ) switches formulas (Mächler 2012):
// log(−expm1(x)) loses nothing near 0, log1p(−exp(x)) nothing far below.
const log1mexpCut = -math.Ln2

// minLogProb stands in for a mean log-probability of exactly 0 (a model
// certain of every response token, which fp32 can round to), where
// log(1 − eˣ) is −∞: the smallest normal float32, so the log-odds stay
// finite.
const minLogProb = -1.1754943508222875e-38

// log1mexp is log(1 − eˣ) for x ≤ 0, stable over the whole range. Each
// formula sees its input clamped to its own side of the cut, so the branch
// torch.where discards has a finite gradient (0 × ∞ would be NaN).
func log1mexp(x *ts.Tensor) *ts.Tensor {
	x = x.MustClampMax(ts.FloatScalar(minLogProb), false)
	near := x.MustClampMin(ts.FloatScalar(log1mexpCut), false).MustExpm1(true).MustNeg(true).MustLog(true)
	far := x.MustClampMax(ts.FloatScalar(log1mexpCut), false).MustExp(true).MustNeg(true).MustLog1p(true)
	cond := x.MustGt(ts.FloatScalar(log1mexpCut), true)
	out := near.MustWhereSelf(cond, far, true)
	cond.MustDrop()
	far.MustDrop()
	return out
}
