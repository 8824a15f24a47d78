package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TokenLogProbs returns log p(targets[b, t]) under logits[b, t] ([B, T, V]
// logits, [B, T] int64 targets → [B, T] float32), keeping the graph for
// training objectives.
func TokenLogProbs(logits, targets *ts.Tensor) *ts.Tensor {
	lp := logits.MustLogSoftmax(-1, gotch.Float, false)
	idx := targets.MustUnsqueeze(2, false)
	out := lp.MustGather(2, idx, false, true).MustSqueezeDim(2, true)
	idx.MustDrop()
	return out
}

// LogLikelihood is the score of a continuation given its context.
type LogLikelihood struct {
	Sum    float64 // Σ log p(continuation token | everything before it)
	Tokens int     // continuation tokens scored
	Greedy bool    // every continuation token is the argmax prediction
}

// maxScoreElements bounds batch·seq·vocab logits per forward call when
// scoring, so long inputs are scored a few at a time.
const maxScoreElements = 1 << 27

// LogLikelihoods scores each continuation after its context, as the
// lm-evaluation-harness loglikelihood request does. A context may be empty
// only when its continuation has two or more tokens (the first is then
// context).
func (m *Model) LogLikelihoods(ctx context.Context, contexts, continuations [][]int) ([]LogLikelihood, error) {
	if len(contexts) != len(continuations) {
		return nil, fmt.Errorf("train: LogLikelihoods: %d contexts but %d continuations", len(contexts), len(continuations))
	}
	type item struct {
		ids   []int
		first int // index of the first scored token
	}
	items := make([]item, len(contexts))
	for i := range contexts {
		ids := append(slices.Clone(contexts[i]), continuations[i]...)
		first := len(contexts[i])
		if first == 0 {
			first = 1
		}
		if len(ids) < 2 || first >= len(ids) {
			return nil, fmt.Errorf("train: LogLikelihoods: request %d has nothing to score (context %d tokens, continuation %d)", i, len(contexts[i]), len(continuations[i]))
		}
		for _, id := range ids {
			if id < 0 || id >= m.Config.VocabSize {
				return nil, fmt.Errorf("train: LogLikelihoods: request %d: token id %d outside the vocabulary [0, %d)", i, id, m.Config.VocabSize)
			}
		}
		items[i] = item{ids, first}
	}
	// Longest first, so each batch pads little.
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(items[order[a]].ids) > len(items[order[b]].ids) })
	out := make([]LogLikelihood, len(items))
	var err error
	for start := 0; start < len(order); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		T := len(items[order[start]].ids) - 1
		bs := max(1, maxScoreElements/(T*m.Config.VocabSize))
		end := min(len(order), start+bs)
		batch := order[start:end]
		B := len(batch)
		inp := make([]int64, B*T)
		tgt := make([]int64, B*T)
		msk := make([]int64, B*T)
		score := make([]float64, B*T) // 1 where the target is scored
		for r, i := range batch {
			it := items[i]
			for t := 0; t+1 < len(it.ids); t++ {
				inp[r*T+t] = int64(it.ids[t])
				tgt[r*T+t] = int64(it.ids[t+1])
				msk[r*T+t] = 1
				if t+1 >= it.first {
					score[r*T+t] = 1
				}
			}
		}
		torchx.NoGrad(func() {
			var res []LogLikelihood
			res, err = m.scoreBatch(inp, tgt, msk, score, int64(B), int64(T))
			for r, i := range batch {
				out[i] = res[r]
			}
		})
		if err != nil {
			return nil, err
		}
		start = end
	}
	return out, nil
}

// scoreBatch scores one padded batch on the model's device: logits in the
// model's dtype become fp32 log-probabilities, and the three per-row
// results come back to the host in one copy.
func (m *Model) scoreBatch(inp, tgt, msk []int64, score []float64, B, T int64) ([]LogLikelihood, error) {
	dev := m.opts.device()
	in := int64Tensor(inp, []int64{B, T}, dev)
	// The mask stays on the host: Forward reads it there for the positions.
	mask := int64Tensor(msk, []int64{B, T}, gotch.CPU)
	defer in.MustDrop()
	defer mask.MustDrop()
	out, err := m.Forward(in, ForwardOptions{AttentionMask: mask})
	if err != nil {
		return nil, err
	}
	defer out.Drop()
	targets := int64Tensor(tgt, []int64{B, T}, dev)
	defer targets.MustDrop()
	lp := TokenLogProbs(out.Logits, targets)
	pred := out.Logits.MustArgmax([]int64{-1}, false, false)
	hit := pred.MustEqTensor(targets, true).MustTotype(gotch.Float, true)
	sc, err := ts.OfSlice(score)
	if err != nil {
		return nil, err
	}
	sc = sc.MustTotype(gotch.Float, true).MustView([]int64{B, T}, true).MustTo(dev, true)
	sums := lp.MustMul(sc, true).MustTotype(gotch.Double, true).MustSumDimIntlist([]int64{1}, false, gotch.Double, true)
	// A row is greedy when no scored position missed.
	miss := hit.MustSub(sc, false).MustLt(ts.FloatScalar(0), true).MustSumDimIntlist([]int64{1}, false, gotch.Double, true)
	hit.MustDrop()
	n := sc.MustSumDimIntlist([]int64{1}, false, gotch.Double, true)
	all := ts.MustStack([]*ts.Tensor{sums, miss, n}, 0) // [3, B]
	sums.MustDrop()
	miss.MustDrop()
	n.MustDrop()
	v := torchx.Float64s(all, true)
	res := make([]LogLikelihood, B)
	for r := range res {
		res[r] = LogLikelihood{Sum: v[r], Tokens: int(v[2*B+int64(r)]), Greedy: v[B+int64(r)] == 0}
	}
	return res, nil
}

// Score returns, for each sequence, Σ over positions i ≥ 1 of log p(ids[i]
// | ids[:i]): the log-probability of the sequence after its first token.
// Sequences of one token score 0.
func (m *Model) Score(ctx context.Context, seqs [][]int) ([]float64, error) {
	out := make([]float64, len(seqs))
	var ctxs, conts [][]int
	var idx []int
	for i, s := range seqs {
		if len(s) == 0 {
			return nil, fmt.Errorf("train: Score: sequence %d is empty", i)
		}
		if len(s) == 1 {
			continue
		}
		ctxs = append(ctxs, s[:1])
		conts = append(conts, s[1:])
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return out, nil
	}
	lls, err := m.LogLikelihoods(ctx, ctxs, conts)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		out[i] = lls[j].Sum
	}
	return out, nil
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxNewTokens int     // tokens to generate at most per prompt (default 128)
	Temperature  float64 // 0 is greedy decoding
	TopP         float64 // nucleus sampling mass; 0 or 1 disables it
	Seed         int64   // sampling seed; the same seed gives the same text
	// StopIDs end a continuation (default Model.StopIDs). Include the
	// chat template's end-of-turn token.
	StopIDs []int
}

// Generate continues each prompt (token ids) and returns the new tokens,
// without the stop token. The prompts are decoded together: left-padded
// into one batch, prefilled in one forward call, then one forward call per
// new token for the whole batch, with a KV cache allocated once for the
// longest prompt plus MaxNewTokens. A row that produced a stop id is done:
// its later tokens are masked out and ignored while the other rows go on.
// With greedy decoding a row gets the tokens it would get alone (up to
// floating-point ties). Sampling draws each row from its own generator
// seeded by Seed, so a row's text does not depend on the other prompts.
//
// Per new token, the copies between host and device are small: the
// batch's chosen ids to the host (B integers, for the stop ids), the new
// tokens' rotary positions to the device (B integers; Forward computes
// positions on the host), the live rows' mask once a row is done, and when
// sampling one uniform number per row. Logits and the cache stay on the
// device.
func (m *Model) Generate(ctx context.Context, prompts [][]int, opts GenerateOptions) ([][]int, error) {
	if opts.MaxNewTokens == 0 {
		opts.MaxNewTokens = 128
	}
	if opts.MaxNewTokens < 0 || opts.Temperature < 0 || opts.TopP < 0 || opts.TopP > 1 {
		return nil, fmt.Errorf("train: Generate: MaxNewTokens %d, Temperature %g, TopP %g: want MaxNewTokens > 0, Temperature ≥ 0 and TopP in [0, 1]", opts.MaxNewTokens, opts.Temperature, opts.TopP)
	}
	stop := opts.StopIDs
	if stop == nil {
		stop = m.StopIDs()
	}
	B := len(prompts)
	if B == 0 {
		return nil, nil
	}
	L := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("train: Generate: prompt %d is empty", i)
		}
		for _, id := range p {
			if id < 0 || id >= m.Config.VocabSize {
				return nil, fmt.Errorf("train: Generate: prompt %d: token id %d outside the vocabulary [0, %d)", i, id, m.Config.VocabSize)
			}
		}
		L = max(L, len(p))
	}
	ids := make([]int64, B*L)
	mask := make([]int64, B*L)
	padded := false
	for b, p := range prompts {
		off := L - len(p)
		padded = padded || off > 0
		for t, id := range p {
			ids[b*L+off+t] = int64(id)
			mask[b*L+off+t] = 1
		}
	}
	rngs := make([]*rand.Rand, B)
	for b := range rngs {
		rngs[b] = rand.New(rand.NewPCG(uint64(opts.Seed), 0x9e3779b97f4a7c15))
	}
	out := make([][]int, B)
	done := make([]bool, B)
	var err error
	torchx.NoGrad(func() {
		cache := NewKVCacheFor(L + opts.MaxNewTokens)
		defer cache.Drop()
		in := int64Tensor(ids, []int64{int64(B), int64(L)}, m.opts.device())
		fo := ForwardOptions{Cache: cache, LastOnly: true}
		if padded {
			// On the host: Forward reads the mask there for the positions.
			fo.AttentionMask = int64Tensor(mask, []int64{int64(B), int64(L)}, gotch.CPU)
		}
		for step := 0; step < opts.MaxNewTokens; step++ {
			if err = ctx.Err(); err != nil {
				break
			}
			var res *Output
			res, err = m.Forward(in, fo)
			in.MustDrop()
			if fo.AttentionMask != nil {
				fo.AttentionMask.MustDrop()
				fo.AttentionMask = nil
			}
			if err != nil {
				return
			}
			next := m.pick(res.Logits, opts, rngs)
			res.Drop()
			left := 0
			for b, id := range next.Int64Values() {
				if done[b] {
					continue
				}
				if slices.Contains(stop, int(id)) {
					done[b] = true
					continue
				}
				out[b] = append(out[b], int(id))
				left++
			}
			if left == 0 {
				next.MustDrop()
				return
			}
			in = next.MustView([]int64{int64(B), 1}, true)
			if left < B {
				// Done rows go on through the batch, masked: no later token
				// attends to what they are fed.
				live := make([]int64, B)
				for b := range live {
					if !done[b] {
						live[b] = 1
					}
				}
				fo.AttentionMask = int64Tensor(live, []int64{int64(B), 1}, gotch.CPU)
			}
		}
		in.MustDrop()
		if fo.AttentionMask != nil {
			fo.AttentionMask.MustDrop()
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pick chooses each row's next token from last-position logits [B, 1, V]
// on their device and returns the ids [B] there. Greedy is the argmax.
// Sampling draws from softmax(logits / Temperature) restricted, with 0 <
// TopP < 1, to the smallest set of most likely tokens whose mass reaches
// TopP: the probabilities are sorted and summed on the device, and row b's
// token is the first whose running sum exceeds u_b times the kept mass,
// u_b drawn from rngs[b].
func (m *Model) pick(logits *ts.Tensor, opts GenerateOptions, rngs []*rand.Rand) *ts.Tensor {
	s := logits.MustSize()
	B, V := s[0], s[2]
	if opts.Temperature == 0 {
		return logits.MustArgmax([]int64{-1}, false, false).MustView([]int64{B}, true)
	}
	probs := logits.MustDivScalar(ts.FloatScalar(opts.Temperature), false).MustSoftmax(-1, gotch.Double, true).MustView([]int64{B, V}, true)
	sorted, idx := probs.MustSortStable(true, -1, true, true)
	cum := sorted.MustCumsum(-1, gotch.Double, true)
	defer cum.MustDrop()
	defer idx.MustDrop()
	keep := ts.MustFull([]int64{B, 1}, ts.IntScalar(V), gotch.Int64, cum.MustDevice())
	if opts.TopP > 0 && opts.TopP < 1 {
		keep.MustDrop()
		// The kept set ends at the first token whose running sum reaches
		// TopP, so it holds the tokens before it and that one.
		keep = cum.MustLt(ts.FloatScalar(opts.TopP), false).MustSumDimIntlist([]int64{1}, true, gotch.Int64, true).MustAddScalar(ts.IntScalar(1), true).MustClampMax(ts.IntScalar(V), true)
	}
	last := keep.MustSubScalar(ts.IntScalar(1), true)
	defer last.MustDrop()
	total := cum.MustGather(1, last, false, false) // [B, 1]
	u := make([]float64, B)
	for b := range u {
		u[b] = rngs[b].Float64()
	}
	ut := ts.MustOfSlice(u).MustView([]int64{B, 1}, true)
	if !sameDevice(cum.MustDevice(), gotch.CPU) {
		ut = ut.MustTo(cum.MustDevice(), true)
	}
	r := ut.MustMul(total, true)
	total.MustDrop()
	j := cum.MustLeTensor(r, false).MustSumDimIntlist([]int64{1}, true, gotch.Int64, true)
	r.MustDrop()
	j = j.MustMinimum(last, true)
	out := idx.MustGather(1, j, false, false).MustView([]int64{B}, true)
	j.MustDrop()
	return out
}
