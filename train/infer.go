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

// KVCache holds the keys and values of the tokens a model has seen, so a
// later Forward call processes only new tokens. A cache belongs to one
// model and one batch; Drop frees it.
type KVCache struct {
	batch   int64
	n       int64
	k, v    []*ts.Tensor // per layer [B, KV, n, head_dim]
	keyMask *ts.Tensor   // [B, n] bool, or nil when nothing is padded
	keySeg  *ts.Tensor   // [B, n] int64, or nil without segments
	nextPos []int64      // per row, the rotary position of the next token
}

// NewKVCache returns an empty cache.
func NewKVCache() *KVCache { return &KVCache{} }

// Len is the number of positions cached.
func (c *KVCache) Len() int64 { return c.n }

// Drop frees the cached tensors; the cache is empty afterwards.
func (c *KVCache) Drop() {
	for _, t := range append(append(c.k, c.v...), c.keyMask, c.keySeg) {
		if t != nil {
			t.MustDrop()
		}
	}
	*c = KVCache{}
}

func (c *KVCache) append(i int, k, v *ts.Tensor, st *fwdState) (*ts.Tensor, *ts.Tensor) {
	for len(c.k) <= i {
		c.k = append(c.k, nil)
		c.v = append(c.v, nil)
	}
	if c.k[i] != nil {
		nk := ts.MustCat([]*ts.Tensor{c.k[i], k}, 2)
		nv := ts.MustCat([]*ts.Tensor{c.v[i], v}, 2)
		c.k[i].MustDrop()
		c.v[i].MustDrop()
		k.MustDrop()
		v.MustDrop()
		k, v = nk, nv
	}
	c.k[i], c.v[i] = k, v
	return k.MustShallowClone(), v.MustShallowClone()
}

// extendMask returns the key validity of cached + new keys ([B, n+T]).
func (c *KVCache) extendMask(m *ts.Tensor, B, T int64, dev gotch.Device) *ts.Tensor {
	if c.keyMask == nil && m == nil {
		return nil
	}
	if c.n == 0 {
		return m
	}
	past := c.keyMask
	if past == nil {
		past = ts.MustOnes([]int64{B, c.n}, gotch.Bool, dev)
		defer past.MustDrop()
	}
	if m == nil {
		m = ts.MustOnes([]int64{B, T}, gotch.Bool, dev)
	}
	out := ts.MustCat([]*ts.Tensor{past, m}, 1)
	m.MustDrop()
	return out
}

func (c *KVCache) extendSeg(s *ts.Tensor, B, T int64, dev gotch.Device) *ts.Tensor {
	if c.keySeg == nil && s == nil {
		return nil
	}
	if c.n == 0 {
		return s
	}
	past := c.keySeg
	if past == nil {
		past = ts.MustZeros([]int64{B, c.n}, gotch.Int64, dev)
		defer past.MustDrop()
	}
	if s == nil {
		s = ts.MustZeros([]int64{B, T}, gotch.Int64, dev)
	}
	out := ts.MustCat([]*ts.Tensor{past, s}, 1)
	s.MustDrop()
	return out
}

func (c *KVCache) commit(st *fwdState) {
	for _, t := range []*ts.Tensor{c.keyMask, c.keySeg} {
		if t != nil {
			t.MustDrop()
		}
	}
	c.keyMask, c.keySeg = st.keyMask, st.keySeg
	c.nextPos = st.nextPos
	c.n += st.seq
	c.batch = st.batch
}

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

func (m *Model) scoreBatch(inp, tgt, msk []int64, score []float64, B, T int64) ([]LogLikelihood, error) {
	dev := m.opts.device()
	in := int64Tensor(inp, []int64{B, T}, gotch.CPU)
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
	miss := hit.MustSub(sc, false).MustLt(ts.FloatScalar(0), true).MustTotype(gotch.Float, true).MustSumDimIntlist([]int64{1}, false, gotch.Float, true)
	hit.MustDrop()
	n := sc.MustSumDimIntlist([]int64{1}, false, gotch.Float, true)
	sv, mv, nv := torchx.Float64s(sums, true), torchx.Float64s(miss, true), torchx.Float64s(n, true)
	res := make([]LogLikelihood, B)
	for r := range res {
		res[r] = LogLikelihood{Sum: sv[r], Tokens: int(nv[r]), Greedy: mv[r] == 0}
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
// without the stop token. Prompts are left-padded into one batch and
// decoded with a KV cache.
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
	for b, p := range prompts {
		off := L - len(p)
		for t, id := range p {
			ids[b*L+off+t] = int64(id)
			mask[b*L+off+t] = 1
		}
	}
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x9e3779b97f4a7c15))
	out := make([][]int, B)
	done := make([]bool, B)
	var err error
	torchx.NoGrad(func() {
		cache := NewKVCache()
		defer cache.Drop()
		in := int64Tensor(ids, []int64{int64(B), int64(L)}, gotch.CPU)
		am := int64Tensor(mask, []int64{int64(B), int64(L)}, gotch.CPU)
		fo := ForwardOptions{AttentionMask: am, Cache: cache, LastOnly: true}
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
			next := m.pick(res.Logits, opts, rng)
			res.Drop()
			feed := make([]int64, B)
			left := 0
			for b, id := range next {
				feed[b] = int64(id)
				if done[b] {
					continue
				}
				if slices.Contains(stop, id) {
					done[b] = true
					continue
				}
				out[b] = append(out[b], id)
				left++
			}
			if left == 0 {
				return
			}
			in = int64Tensor(feed, []int64{int64(B), 1}, gotch.CPU)
		}
		in.MustDrop()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pick chooses each row's next token from last-position logits [B, 1, V].
func (m *Model) pick(logits *ts.Tensor, opts GenerateOptions, rng *rand.Rand) []int {
	if opts.Temperature == 0 {
		am := logits.MustArgmax([]int64{-1}, false, false).MustView([]int64{-1}, true)
		v := am.Int64Values(true)
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		return out
	}
	s := logits.MustSize()
	B, V := int(s[0]), int(s[2])
	probs := logits.MustDivScalar(ts.FloatScalar(opts.Temperature), false).MustSoftmax(-1, gotch.Double, true)
	p := torchx.Float64s(probs, true)
	out := make([]int, B)
	for b := range B {
		out[b] = sample(p[b*V:(b+1)*V], opts.TopP, rng)
	}
	return out
}

// sample draws an index from probabilities p, restricted to the smallest
// set of most likely tokens whose mass reaches topP (when 0 < topP < 1).
func sample(p []float64, topP float64, rng *rand.Rand) int {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	total := 1.0
	if topP > 0 && topP < 1 {
		sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
		var acc float64
		for n, i := range idx {
			acc += p[i]
			if acc >= topP {
				idx = idx[:n+1]
				break
			}
		}
		total = acc
	}
	r := rng.Float64() * total
	for _, i := range idx {
		r -= p[i]
		if r < 0 {
			return i
		}
	}
	return idx[len(idx)-1]
}
