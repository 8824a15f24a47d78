package align

import (
	"errors"
	"fmt"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ErrNoResponse reports a pair side with no trained response token: its
// mean log-probability would be 0/0.
var ErrNoResponse = errors.New("no response token to score")

// forwardFunc is train.Model.Forward's shape; tests put a fixed-logits
// model in its place.
type forwardFunc func(*ts.Tensor, train.ForwardOptions) (*train.Output, error)

// responseTokens counts the positions of s that predict a trained token.
// The first token is never predicted, so its label does not count.
func responseTokens(s tokenize.Sequence) int {
	n := 0
	for t := 1; t < len(s.Labels); t++ {
		if s.Labels[t] != tokenize.IgnoreIndex {
			n++
		}
	}
	return n
}

// CheckPairs returns an error naming the first pair whose chosen or rejected
// side has no response token; such a pair has no defined log-probability.
func CheckPairs(pairs []tokenize.PreferenceExample) error {
	for i := range pairs {
		if err := checkPair(&pairs[i]); err != nil {
			return fmt.Errorf("align: pair %d: %w", i, err)
		}
	}
	return nil
}

func checkPair(p *tokenize.PreferenceExample) error {
	for _, side := range []struct {
		name string
		s    tokenize.Sequence
	}{{"chosen", p.Chosen}, {"rejected", p.Rejected}} {
		if len(side.s.IDs) != len(side.s.Labels) {
			return fmt.Errorf("%s has %d ids and %d labels", side.name, len(side.s.IDs), len(side.s.Labels))
		}
		if responseTokens(side.s) == 0 {
			return fmt.Errorf("%s: %w (every label is %d)", side.name, ErrNoResponse, tokenize.IgnoreIndex)
		}
	}
	return nil
}

// DropEmpty returns the pairs that CheckPairs accepts and how many it left
// out.
func DropEmpty(pairs []tokenize.PreferenceExample) (kept []tokenize.PreferenceExample, dropped int) {
	for i := range pairs {
		if checkPair(&pairs[i]) != nil {
			dropped++
			continue
		}
		kept = append(kept, pairs[i])
	}
	return kept, dropped
}

// pairBatch holds the rows of P pairs stacked in one batch: chosen
// sequences in rows 0…P-1, rejected ones in rows P…2P-1. Position t of a
// row predicts token t+1; the masks select which predictions count.
type pairBatch struct {
	P                   int
	ids, pos, seg, attn *ts.Tensor // [2P, T] int64 model inputs
	targets             *ts.Tensor // [2P, T] int64: the next token (0 past the end)
	respMask, allMask   *ts.Tensor // [2P, T] float: response targets; every target of the row
	respCount, allCount []float64  // per row
	tokens              int        // unpadded input tokens
}

func (b *pairBatch) drop() {
	for _, t := range []*ts.Tensor{b.ids, b.pos, b.seg, b.attn, b.targets, b.respMask, b.allMask} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// newPairBatch collates pairs idx into one right-padded batch.
func newPairBatch(pairs []tokenize.PreferenceExample, idx []int, padID int) (*pairBatch, error) {
	P := len(idx)
	if P == 0 {
		return nil, errors.New("align: empty micro-batch")
	}
	rows := make([]tokenize.PackedRow, 2*P)
	for i, j := range idx {
		if j < 0 || j >= len(pairs) {
			return nil, fmt.Errorf("align: pair %d out of range [0, %d)", j, len(pairs))
		}
		if err := checkPair(&pairs[j]); err != nil {
			return nil, fmt.Errorf("align: pair %d: %w", j, err)
		}
		rows[i] = pairs[j].Chosen.Row()
		rows[P+i] = pairs[j].Rejected.Row()
	}
	c := tokenize.Collate(rows, padID)
	R, T := 2*P, len(c.IDs[0])
	b := &pairBatch{P: P, respCount: make([]float64, R), allCount: make([]float64, R)}
	ids, pos, seg, attn, tgt := make([]int64, 0, R*T), make([]int64, 0, R*T), make([]int64, 0, R*T), make([]int64, 0, R*T), make([]int64, R*T)
	resp, all := make([]float32, R*T), make([]float32, R*T)
	for r := range R {
		n := rows[r].Len()
		for t := range T {
			ids = append(ids, int64(c.IDs[r][t]))
			pos = append(pos, int64(c.PositionIDs[r][t]))
			seg = append(seg, int64(c.SegmentIDs[r][t]))
			attn = append(attn, int64(c.AttentionMask[r][t]))
			if t+1 >= n {
				continue
			}
			k := r*T + t
			tgt[k] = int64(c.IDs[r][t+1])
			all[k] = 1
			b.allCount[r]++
			if c.Labels[r][t+1] != tokenize.IgnoreIndex {
				if c.Labels[r][t+1] != c.IDs[r][t+1] {
					return nil, fmt.Errorf("align: pair %d: label %d at token %d differs from the input id %d", idx[r%P], c.Labels[r][t+1], t+1, c.IDs[r][t+1])
				}
				resp[k] = 1
				b.respCount[r]++
			}
		}
		b.tokens += n
	}
	shape := []int64{int64(R), int64(T)}
	mk := func(v []int64) *ts.Tensor { return ts.MustOfSlice(v).MustView(shape, true) }
	mkf := func(v []float32) *ts.Tensor { return ts.MustOfSlice(v).MustView(shape, true) }
	b.ids, b.pos, b.seg, b.attn, b.targets = mk(ids), mk(pos), mk(seg), mk(attn), mk(tgt)
	b.respMask, b.allMask = mkf(resp), mkf(all)
	return b, nil
}

// lossDType is the precision of the preference math: fp32 at least, as
// TRL computes the log-odds, and fp64 when the logits are (for gradient
// checks).
func lossDType(logits *ts.Tensor) gotch.DType {
	if logits.DType() == gotch.Double {
		return gotch.Double
	}
	return gotch.Float
}

// forwardLogps runs the batch through the model and returns per-row summed
// log-probabilities of the response targets and, when withAll, of every
// target ([2P] each), and the model's auxiliary loss (nil for dense models).
func forwardLogps(fwd forwardFunc, b *pairBatch, withAll bool) (resp, all, aux *ts.Tensor, err error) {
	out, err := fwd(b.ids, train.ForwardOptions{PositionIDs: b.pos, SegmentIDs: b.seg, AttentionMask: b.attn})
	if err != nil {
		return nil, nil, nil, err
	}
	logits := out.Logits
	dt := lossDType(logits)
	if logits.DType() != dt {
		logits = logits.MustTotype(dt, true)
	}
	dev := logits.MustDevice()
	tgt := b.targets.MustTo(dev, false)
	// train.TokenLogProbs would compute in fp32; the gradient check needs fp64.
	full := logits.MustLogSoftmax(-1, dt, true)
	ix := tgt.MustUnsqueeze(2, true)
	lp := full.MustGather(2, ix, false, true).MustSqueezeDim(2, true) // [2P, T]
	ix.MustDrop()
	resp, all = b.maskedSums(lp, withAll)
	lp.MustDrop()
	return resp, all, out.AuxLoss, nil
}

// maskedSums returns per-row sums of log-probs lp [2P, T] over the
// response targets and, when withAll, over every target.
func (b *pairBatch) maskedSums(lp *ts.Tensor, withAll bool) (resp, all *ts.Tensor) {
	dt, dev := lp.DType(), lp.MustDevice()
	masked := func(mask *ts.Tensor) *ts.Tensor {
		m := mask.MustTotype(dt, false).MustTo(dev, true)
		s := lp.MustMul(m, false).MustSumDimIntlist([]int64{1}, false, dt, true)
		m.MustDrop()
		return s
	}
	resp = masked(b.respMask)
	if withAll {
		all = masked(b.allMask)
	}
	return resp, all
}

// passLogps is forwardLogps through m.ForwardLogProbs, for a model with
// activation checkpointing: the pass's Backward replaces the loss's.
func passLogps(m *train.Model, b *pairBatch, withAll bool) (resp, all, aux *ts.Tensor, pass *train.Pass, err error) {
	pass, err = m.ForwardLogProbs(b.ids, b.targets, train.ForwardOptions{PositionIDs: b.pos, SegmentIDs: b.seg, AttentionMask: b.attn})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	resp, all = b.maskedSums(pass.LogProbs, withAll)
	if pass.AuxLoss != nil {
		aux = pass.AuxLoss.MustShallowClone()
	}
	return resp, all, aux, pass, nil
}

// logps runs the batch through the model: checkpointed when the model is
// (pass is then not nil), else through fwd.
func logps(m *train.Model, fwd forwardFunc, b *pairBatch, withAll bool) (resp, all, aux *ts.Tensor, pass *train.Pass, err error) {
	if m != nil && m.GradientCheckpointing() {
		return passLogps(m, b, withAll)
	}
	resp, all, aux, err = forwardLogps(fwd, b, withAll)
	return resp, all, aux, nil, err
}

// vecOf makes a 1-D tensor of vals in dtype dt on dev.
func vecOf(vals []float64, dt gotch.DType, dev gotch.Device) *ts.Tensor {
	return ts.MustOfSlice(vals).MustTotype(dt, true).MustTo(dev, true)
}

// halves splits a [2P] tensor into its chosen and rejected halves.
func halves(x *ts.Tensor, P int) (chosen, rejected *ts.Tensor) {
	return x.MustNarrow(0, 0, int64(P), false), x.MustNarrow(0, int64(P), int64(P), false)
}
