package train

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Model is a decoder language model (Llama, Mistral or Mixtral) on
// libtorch. Its tensors are freed by Drop; the Go garbage collector would
// free them too, but far too late for the memory they hold.
type Model struct {
	Config *Config
	opts   ModelOptions

	embed  *ts.Tensor // [V, D]
	layers []*layer
	norm   *ts.Tensor // [D]
	lmHead *ts.Tensor // [V, D]; nil when tied to embed

	invFreq *ts.Tensor // [head_dim/2] float32
	genEOS  []int      // generation_config.json's eos_token_id
	lora    *LoRAConfig
	// loraOff switches adapters off (for a frozen reference model).
	loraOff bool
	// train enables dropout in LoRA adapters.
	train bool
	// units, when set, gathers and frees sharded parameters around each
	// unit of a checkpointed pass (ZeRO stage 3; see zero3.go).
	units unitGatherer
	// genConfig is generation_config.json as read, kept so Save carries
	// the base's sampling settings over.
	genConfig map[string]json.RawMessage
}

type layer struct {
	inNorm, postNorm *ts.Tensor
	q, k, v, o       *linear
	// Dense MLP (Llama, Mistral).
	gate, up, down *linear
	// Mixture of experts (Mixtral).
	router  *linear
	experts []expert
}

type expert struct{ w1, w2, w3 *linear }

// linear is a bias-free projection y = x·Wᵀ with an optional LoRA adapter.
type linear struct {
	w      *ts.Tensor // [out, in]
	module string     // the LoRA target name: "q_proj", "w1", …
	a, b   *ts.Tensor // LoRA A [r, in] and B [out, r]; nil without an adapter
}

// binding ties one model tensor to its Hugging Face name, shape and role.
// Model.bindings is the only place that knows the names.
type binding struct {
	name    string
	t       **ts.Tensor
	shape   []int64
	noDecay bool
	norm    bool
	// adapter marks a LoRA matrix: fp32 whatever the base's dtype (PEFT's
	// default) and always trainable.
	adapter bool
}

func (m *Model) bindings() []binding {
	c := m.Config
	V, D, I := int64(c.VocabSize), int64(c.HiddenSize), int64(c.IntermediateSize)
	H, KV, hd := int64(c.NumAttentionHeads), int64(c.NumKeyValueHeads), int64(c.HeadDim)
	bs := []binding{{name: "model.embed_tokens.weight", t: &m.embed, shape: []int64{V, D}}}
	for i, l := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		bs = append(bs,
			binding{name: p + "input_layernorm.weight", t: &l.inNorm, shape: []int64{D}, noDecay: true, norm: true},
			binding{name: p + "self_attn.q_proj.weight", t: &l.q.w, shape: []int64{H * hd, D}},
			binding{name: p + "self_attn.k_proj.weight", t: &l.k.w, shape: []int64{KV * hd, D}},
			binding{name: p + "self_attn.v_proj.weight", t: &l.v.w, shape: []int64{KV * hd, D}},
			binding{name: p + "self_attn.o_proj.weight", t: &l.o.w, shape: []int64{D, H * hd}},
			binding{name: p + "post_attention_layernorm.weight", t: &l.postNorm, shape: []int64{D}, noDecay: true, norm: true},
		)
		if c.IsMoE() {
			mp := p + "block_sparse_moe."
			bs = append(bs, binding{name: mp + "gate.weight", t: &l.router.w, shape: []int64{int64(c.NumLocalExperts), D}})
			for e := range l.experts {
				ep := fmt.Sprintf("%sexperts.%d.", mp, e)
				x := &l.experts[e]
				bs = append(bs,
					binding{name: ep + "w1.weight", t: &x.w1.w, shape: []int64{I, D}},
					binding{name: ep + "w2.weight", t: &x.w2.w, shape: []int64{D, I}},
					binding{name: ep + "w3.weight", t: &x.w3.w, shape: []int64{I, D}},
				)
			}
			continue
		}
		bs = append(bs,
			binding{name: p + "mlp.gate_proj.weight", t: &l.gate.w, shape: []int64{I, D}},
			binding{name: p + "mlp.up_proj.weight", t: &l.up.w, shape: []int64{I, D}},
			binding{name: p + "mlp.down_proj.weight", t: &l.down.w, shape: []int64{D, I}},
		)
	}
	bs = append(bs, binding{name: "model.norm.weight", t: &m.norm, shape: []int64{D}, noDecay: true, norm: true})
	if !c.TieWordEmbeddings {
		bs = append(bs, binding{name: "lm_head.weight", t: &m.lmHead, shape: []int64{V, D}})
	}
	return bs
}

// namedLinear is a projection with its Hugging Face module path
// ("model.layers.3.self_attn.q_proj"), the key LoRA adapters hang from.
type namedLinear struct {
	path string
	l    *linear
}

// linears lists every projection of the model in a stable order.
func (m *Model) linears() []namedLinear {
	var out []namedLinear
	add := func(path string, l *linear) { out = append(out, namedLinear{path, l}) }
	for i, l := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"self_attn.q_proj", l.q)
		add(p+"self_attn.k_proj", l.k)
		add(p+"self_attn.v_proj", l.v)
		add(p+"self_attn.o_proj", l.o)
		if m.Config.IsMoE() {
			add(p+"block_sparse_moe.gate", l.router)
			for e, x := range l.experts {
				ep := fmt.Sprintf("%sblock_sparse_moe.experts.%d.", p, e)
				add(ep+"w1", x.w1)
				add(ep+"w2", x.w2)
				add(ep+"w3", x.w3)
			}
			continue
		}
		add(p+"mlp.gate_proj", l.gate)
		add(p+"mlp.up_proj", l.up)
		add(p+"mlp.down_proj", l.down)
	}
	return out
}

// newSkeleton builds a model's structure with no tensors yet.
func newSkeleton(cfg *Config, opts ModelOptions) (*Model, error) {
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := structure(cfg)
	m.opts = opts
	inv := cfg.RopeInvFreq()
	f := make([]float32, len(inv))
	for i, v := range inv {
		f[i] = float32(v)
	}
	t, err := ts.OfSlice(f)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	m.invFreq = t.MustTo(opts.device(), true)
	return m, nil
}

// structure builds the layers of a model for cfg, holding no tensors.
func structure(cfg *Config) *Model {
	m := &Model{Config: cfg}
	for range cfg.NumHiddenLayers {
		l := &layer{q: &linear{module: "q_proj"}, k: &linear{module: "k_proj"}, v: &linear{module: "v_proj"}, o: &linear{module: "o_proj"}}
		if cfg.IsMoE() {
			l.router = &linear{module: "gate"}
			l.experts = make([]expert, cfg.NumLocalExperts)
			for e := range l.experts {
				l.experts[e] = expert{w1: &linear{module: "w1"}, w2: &linear{module: "w2"}, w3: &linear{module: "w3"}}
			}
		} else {
			l.gate, l.up, l.down = &linear{module: "gate_proj"}, &linear{module: "up_proj"}, &linear{module: "down_proj"}
		}
		m.layers = append(m.layers, l)
	}
	return m
}

// numParameters is the number of weights a model of this config holds
// (LoRA adapters aside), counted from the same tensor list checkpoints use.
func numParameters(c *Config) int64 {
	var n int64
	for _, b := range structure(c).bindings() {
		k := int64(1)
		for _, d := range b.shape {
			k *= d
		}
		n += k
	}
	return n
}

// NewModel returns a randomly initialised model for cfg, initialised as
// transformers does: normal(0, 0.02) projections and embeddings, unit norms.
func NewModel(cfg *Config, opts ModelOptions) (*Model, error) {
	m, err := newSkeleton(cfg, opts)
	if err != nil {
		return nil, err
	}
	torchx.ManualSeed(m.opts.Seed)
	for _, b := range m.bindings() {
		var t *ts.Tensor
		if b.norm {
			t = ts.MustOnes(b.shape, m.opts.dtype(), m.opts.device())
		} else {
			t = ts.MustRandn(b.shape, gotch.Float, m.opts.device()).MustMulScalar(ts.FloatScalar(0.02), true)
			if m.opts.dtype() != gotch.Float {
				t = t.MustTotype(m.opts.dtype(), true)
			}
		}
		t.MustRequiresGrad_(m.lora == nil)
		*b.t = t
	}
	return m, nil
}

// Drop frees every tensor of the model (adapters included).
func (m *Model) Drop() {
	for _, b := range m.bindings() {
		if *b.t != nil {
			(*b.t).MustDrop()
			*b.t = nil
		}
	}
	for _, l := range m.linears() {
		dropAdapter(l.l)
	}
	if m.invFreq != nil {
		m.invFreq.MustDrop()
		m.invFreq = nil
	}
}

// Options returns the options the model was built with.
func (m *Model) Options() ModelOptions { return m.opts }

// NamedParameters lists the model's tensors under their Hugging Face names,
// in a stable order, then the LoRA adapters as <module>.lora_A.weight and
// <module>.lora_B.weight. Base weights are not trainable once LoRA is
// applied; norms are marked NoDecay.
func (m *Model) NamedParameters() []Param {
	var out []Param
	for _, b := range m.bindings() {
		out = append(out, Param{Name: b.name, T: *b.t, Trainable: m.lora == nil, NoDecay: b.noDecay})
	}
	for _, l := range m.linears() {
		if l.l.a == nil {
			continue
		}
		out = append(out,
			Param{Name: l.path + ".lora_A.weight", T: l.l.a, Trainable: true},
			Param{Name: l.path + ".lora_B.weight", T: l.l.b, Trainable: true},
		)
	}
	return out
}

// SetTraining turns dropout (in LoRA adapters) on or off. Models start in
// evaluation mode.
func (m *Model) SetTraining(on bool) { m.train = on }

// ForwardOptions are the optional inputs of Forward. All tensors are
// [batch, seq] int64 on any device.
type ForwardOptions struct {
	// PositionIDs overrides the rotary positions. Without it, positions
	// restart at 0 in each segment (SegmentIDs), count only unpadded
	// tokens (AttentionMask, as for left padding), or run 0…T-1, continuing
	// after the cache's tokens.
	PositionIDs *ts.Tensor
	// SegmentIDs marks packed sequences: a token attends only to earlier
	// tokens with the same segment id (block-diagonal causal attention).
	SegmentIDs *ts.Tensor
	// AttentionMask is 1 for real tokens and 0 for padding; no token
	// attends to padding. With a cache, it covers only the new tokens.
	AttentionMask *ts.Tensor
	// Cache, when not nil, holds the keys and values of earlier calls and
	// receives this call's.
	Cache *KVCache
	// LastOnly returns logits for the last position only ([batch, 1, V]),
	// which is all generation needs.
	LastOnly bool
}

// Output is Forward's result; Drop frees it.
type Output struct {
	Logits *ts.Tensor // [batch, seq, vocab] float32 (seq is 1 with LastOnly)
	// AuxLoss is Mixtral's router load-balancing loss (a scalar, not yet
	// multiplied by Config.RouterAuxLossCoef) over the unpadded tokens;
	// nil for dense models.
	AuxLoss *ts.Tensor
}

// Drop frees the output's tensors.
func (o *Output) Drop() {
	if o.Logits != nil {
		o.Logits.MustDrop()
	}
	if o.AuxLoss != nil {
		o.AuxLoss.MustDrop()
	}
}

// Forward runs the model on input ids [batch, seq].
func (m *Model) Forward(input *ts.Tensor, opts ForwardOptions) (*Output, error) {
	if err := m.checkInput(input, opts); err != nil {
		return nil, err
	}
	shape := input.MustSize()
	c := opts.Cache
	if c != nil && c.k != nil && c.batch != shape[0] {
		return nil, fmt.Errorf("train: Forward: batch %d does not match the cache's %d", shape[0], c.batch)
	}
	st, err := m.prepareState(shape[0], shape[1], opts, false)
	if err != nil {
		return nil, err
	}
	defer st.drop()

	ids := toDevice(input, m.opts.device())
	x := ts.MustEmbedding(m.embed, ids, -1, false, false)
	if ids != input {
		ids.MustDrop()
	}
	var aux *moeStats
	if m.Config.IsMoE() {
		aux = &moeStats{}
		defer aux.drop()
	}
	for i, l := range m.layers {
		x = m.layerForward(i, l, x, st, aux)
	}
	if opts.LastOnly {
		x = x.MustNarrow(1, shape[1]-1, 1, true)
	}
	h := rmsNorm(x, m.norm, m.Config.RMSNormEps)
	x.MustDrop()
	head := m.lmHead
	if head == nil {
		head = m.embed
	}
	logits := ts.MustLinear(h, head, ts.None)
	h.MustDrop()
	if logits.DType() != gotch.Float {
		logits = logits.MustTotype(gotch.Float, true)
	}
	out := &Output{Logits: logits}
	if aux != nil {
		out.AuxLoss = aux.loss(m.Config.NumLocalExperts, len(m.layers))
	}
	if c != nil {
		c.commit(st)
	}
	return out, nil
}

// toDevice returns t itself when it is on dev already, else a copy there.
func toDevice(t *ts.Tensor, dev gotch.Device) *ts.Tensor {
	if sameDevice(t.MustDevice(), dev) {
		return t
	}
	return t.MustTo(dev, false)
}

// sameDevice compares devices by kind and CUDA index: gotch reports the CPU
// as {CPU 1} while gotch.CPU is {CPU -1}.
func sameDevice(a, b gotch.Device) bool {
	return a.Name == b.Name && (a.Name == "CPU" || a.Value == b.Value)
}

func tensorMaxMin(t *ts.Tensor) (int64, int64) {
	mx := t.MustMax(false)
	mn := t.MustMin(false)
	defer mx.MustDrop()
	defer mn.MustDrop()
	return mx.Int64Values()[0], mn.Int64Values()[0]
}

// fwdState holds what every layer of one forward call shares.
type fwdState struct {
	batch, seq, past int64
	cos, sin         *ts.Tensor // [B, 1, T, hd]; sin carries rotate_half's sign
	mask             *ts.Tensor // additive [B, 1, 1, T, S] or nil; built only on request (tests)
	attn             *attnMask  // the mask's rules without the T×S tensor
	valid            *ts.Tensor // [B*T] float 1/0 of unpadded tokens, or nil
	cache            *KVCache
	newK, newV       []*ts.Tensor
	keyMask, keySeg  *ts.Tensor // [B, S] for the cache to keep
	keyValidHost     []bool     // keyMask on the host (nil when it is), so attention needs no device read
	nextPos          []int64
}

func (s *fwdState) drop() {
	for _, t := range []*ts.Tensor{s.cos, s.sin, s.mask, s.valid} {
		if t != nil {
			t.MustDrop()
		}
	}
	if s.attn != nil {
		s.attn.drop()
		s.attn = nil
	}
	if s.cache == nil {
		for _, t := range []*ts.Tensor{s.keyMask, s.keySeg} {
			if t != nil {
				t.MustDrop()
			}
		}
	}
}

// prepare computes positions, rotary tables and the attention mask, also
// as the additive [B, 1, 1, T, S] tensor the explicit attention of old
// used (tests compare against it).
func (m *Model) prepare(B, T int64, opts ForwardOptions) (*fwdState, error) {
	return m.prepareState(B, T, opts, true)
}

// prepareState is prepare; the additive T×S mask is built only with
// withMask: attention works from st.attn.
func (m *Model) prepareState(B, T int64, opts ForwardOptions, withMask bool) (*fwdState, error) {
	dev := m.opts.device()
	st := &fwdState{batch: B, seq: T, cache: opts.Cache}
	c := opts.Cache
	if c != nil {
		st.past = c.Len()
	}
	S := st.past + T

	var maskHost []int64
	if opts.AttentionMask != nil {
		maskHost = opts.AttentionMask.Int64Values()
	}
	// Positions are computed on the host: they are B·T integers, and the
	// rules (segments restart, padding does not count) are sequential.
	var pos []int64
	st.nextPos = make([]int64, B)
	if c != nil && c.nextPos != nil {
		copy(st.nextPos, c.nextPos)
	}
	switch {
	case opts.PositionIDs != nil:
		pos = opts.PositionIDs.Int64Values()
		for b := range B {
			st.nextPos[b] = pos[(b+1)*T-1] + 1
		}
	case opts.SegmentIDs != nil:
		seg := opts.SegmentIDs.Int64Values()
		pos = make([]int64, B*T)
		for b := range B {
			p := st.nextPos[b]
			for t := range T {
				i := b*T + t
				if t > 0 && seg[i] != seg[i-1] {
					p = 0
				}
				pos[i] = p
				p++
			}
			st.nextPos[b] = p
		}
	default:
		pos = make([]int64, B*T)
		for b := range B {
			p := st.nextPos[b]
			for t := range T {
				i := b*T + t
				pos[i] = p
				if maskHost == nil || maskHost[i] != 0 {
					p++
				}
			}
			st.nextPos[b] = p
		}
	}
	posT := int64Tensor(pos, []int64{B, T, 1}, dev)
	posF := posT.MustTotype(gotch.Float, true)
	freqs := posF.MustMul(m.invFreq, true) // [B, T, hd/2]
	emb := ts.MustCat([]*ts.Tensor{freqs, freqs}, 2)
	st.cos = emb.MustCos(false).MustUnsqueeze(1, true)
	sin := emb.MustSin(true)
	half := int64(m.Config.HeadDim / 2)
	neg := sin.MustNarrow(2, 0, half, false).MustNeg(true)
	pos2 := sin.MustNarrow(2, half, half, false)
	st.sin = ts.MustCat([]*ts.Tensor{neg, pos2}, 2).MustUnsqueeze(1, true)
	neg.MustDrop()
	pos2.MustDrop()
	sin.MustDrop()
	freqs.MustDrop()
	if m.opts.dtype() != gotch.Float {
		st.cos = st.cos.MustTotype(m.opts.dtype(), true)
		st.sin = st.sin.MustTotype(m.opts.dtype(), true)
	}

	// Keys seen by this call: the cache's, then the new ones. Their
	// validity and segments are kept for later calls.
	var keyMask, keySeg *ts.Tensor
	if opts.AttentionMask != nil {
		am := toDevice(opts.AttentionMask, dev)
		keyMask = am.MustNe(ts.IntScalar(0), am != opts.AttentionMask)
	}
	if opts.SegmentIDs != nil {
		keySeg = toDevice(opts.SegmentIDs, dev)
		if keySeg == opts.SegmentIDs {
			keySeg = keySeg.MustShallowClone()
		}
	}
	var qSeg *ts.Tensor
	if keySeg != nil {
		qSeg = keySeg.MustUnsqueeze(2, false) // [B, T, 1]
	}
	if c != nil {
		keyMask = c.extendMask(keyMask, B, T, dev)
		keySeg = c.extendSeg(keySeg, B, T, dev)
	}
	st.keyMask, st.keySeg = keyMask, keySeg
	st.keyValidHost = keyValidity(c, maskHost, B, T)
	if opts.AttentionMask != nil && m.Config.IsMoE() {
		am := toDevice(opts.AttentionMask, dev)
		st.valid = am.MustNe(ts.IntScalar(0), am != opts.AttentionMask).MustTotype(gotch.Float, true).MustView([]int64{B * T}, true)
	}

	st.attn = newAttnMask(st, int64(m.Config.SlidingWindow))
	if !withMask {
		if qSeg != nil {
			qSeg.MustDrop()
		}
		return st, nil
	}
	// allowed[b, i, j]: query i (absolute index past+i) may attend key j.
	qi := ts.MustArangeStart(ts.IntScalar(st.past), ts.IntScalar(S), gotch.Int64, dev).MustView([]int64{T, 1}, true)
	kj := ts.MustArange(ts.IntScalar(S), gotch.Int64, dev).MustView([]int64{1, S}, true)
	allowed := kj.MustLeTensor(qi, false) // causal [T, S]
	if w := int64(m.Config.SlidingWindow); w > 0 {
		// Mistral's window: key j is visible from i when i - j < window.
		lo := qi.MustSubScalar(ts.IntScalar(w), false)
		inWin := kj.MustGtTensor(lo, false)
		lo.MustDrop()
		allowed = allowed.MustLogicalAnd(inWin, true)
		inWin.MustDrop()
	}
	allowed = allowed.MustUnsqueeze(0, true) // [1, T, S]
	if keyMask != nil {
		km := keyMask.MustUnsqueeze(1, false) // [B, 1, S]
		allowed = allowed.MustLogicalAnd(km, true)
		km.MustDrop()
	}
	if keySeg != nil {
		ks := keySeg.MustUnsqueeze(1, false) // [B, 1, S]
		same := qSeg.MustEqTensor(ks, false) // [B, T, S]
		ks.MustDrop()
		allowed = allowed.MustLogicalAnd(same, true)
		same.MustDrop()
		qSeg.MustDrop()
	}
	if keyMask != nil || keySeg != nil {
		// A query always sees itself, so a padded query row is not all
		// -inf (its softmax would be NaN and poison the gradients).
		diag := kj.MustEqTensor(qi, false)
		allowed = allowed.MustLogicalOr(diag, true)
		diag.MustDrop()
	}
	qi.MustDrop()
	kj.MustDrop()
	if T > 1 || keyMask != nil || keySeg != nil || m.Config.SlidingWindow > 0 {
		zeros := ts.MustZeros([]int64{1}, m.opts.dtype(), dev)
		notAllowed := allowed.MustLogicalNot(true)
		st.mask = zeros.MustMaskedFill(notAllowed, ts.FloatScalar(math.Inf(-1)), true)
		notAllowed.MustDrop()
		ms := st.mask.MustSize() // [B|1, T, S]
		st.mask = st.mask.MustView([]int64{ms[0], 1, 1, T, S}, true)
	} else {
		allowed.MustDrop()
	}
	return st, nil
}

func int64Tensor(vals []int64, shape []int64, dev gotch.Device) *ts.Tensor {
	t := ts.MustOfSlice(vals).MustView(shape, true)
	if !sameDevice(dev, gotch.CPU) {
		t = t.MustTo(dev, true)
	}
	return t
}

func rmsNorm(x, w *ts.Tensor, eps float64) *ts.Tensor {
	xf := x
	if x.DType() != gotch.Float {
		xf = x.MustTotype(gotch.Float, false)
	}
	v := xf.MustSquare(false).MustMeanDim([]int64{-1}, true, gotch.Float, true).MustAddScalar(ts.FloatScalar(eps), true).MustRsqrt(true)
	y := xf.MustMul(v, false)
	v.MustDrop()
	if xf != x {
		xf.MustDrop()
		y = y.MustTotype(x.DType(), true)
	}
	return y.MustMul(w, true)
}

// project applies a projection, plus its adapter when adapters are on.
func (m *Model) project(l *linear, x *ts.Tensor) *ts.Tensor {
	y := ts.MustLinear(x, l.w, ts.None)
	if l.a == nil || m.loraOff {
		return y
	}
	// The adapters are fp32 whatever the base's dtype: PEFT casts the
	// input to the adapter's dtype and the result back.
	in := x
	if x.DType() != l.a.DType() {
		in = x.MustTotype(l.a.DType(), false)
	}
	if m.train && m.lora.Dropout > 0 {
		dr := ts.MustDropout(in, m.lora.Dropout, true)
		if in != x {
			in.MustDrop()
		}
		in = dr
	}
	d := ts.MustLinear(in, l.a, ts.None)
	if in != x {
		in.MustDrop()
	}
	d2 := ts.MustLinear(d, l.b, ts.None).MustMulScalar(ts.FloatScalar(m.lora.scale()), true)
	d.MustDrop()
	if d2.DType() != y.DType() {
		d2 = d2.MustTotype(y.DType(), true)
	}
	y = y.MustAdd(d2, true)
	d2.MustDrop()
	return y
}

// layerForward runs one decoder layer; it consumes x. The layer is three
// segments — attnInputs, attention, attnOutput — so a checkpointed
// recompute can run the middle one without autograd.
func (m *Model) layerForward(i int, l *layer, x *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor {
	q, k, v := m.attnInputs(i, l, x, st)
	a, err := attention(q, k, v, st.attn, m.attnScale())
	if err != nil {
		// Shapes and devices are the model's own here: an error is a bug
		// or a libtorch failure, as with the Must calls around it.
		panic(err)
	}
	q.MustDrop()
	k.MustDrop()
	v.MustDrop()
	return m.attnOutput(l, x, a, st, aux)
}

func (m *Model) attnScale() float64 { return 1 / math.Sqrt(float64(m.Config.HeadDim)) }

// attnInputs is a layer's first segment: input norm, q/k/v projections and
// rotary embeddings. It returns q [B, H, T, hd] and k, v [B, KV, S, hd]
// (S counts the cache's keys) and does not consume x.
func (m *Model) attnInputs(i int, l *layer, x *ts.Tensor, st *fwdState) (q, k, v *ts.Tensor) {
	c := m.Config
	B, T := st.batch, st.seq
	H, KV, hd := int64(c.NumAttentionHeads), int64(c.NumKeyValueHeads), int64(c.HeadDim)
	h := rmsNorm(x, l.inNorm, c.RMSNormEps)
	q = m.project(l.q, h).MustView([]int64{B, T, H, hd}, true).MustTranspose(1, 2, true)
	k = m.project(l.k, h).MustView([]int64{B, T, KV, hd}, true).MustTranspose(1, 2, true)
	v = m.project(l.v, h).MustView([]int64{B, T, KV, hd}, true).MustTranspose(1, 2, true)
	h.MustDrop()
	q = rope(q, st)
	k = rope(k, st)
	if st.cache != nil {
		k, v = st.cache.append(i, k, v, st)
	}
	return q, k, v
}

// attnOutput is a layer's last segment: output projection of the
// attention a [B, H, T, hd], residual, post-attention norm, MLP (or
// Mixtral's experts) and residual. It consumes x and a.
func (m *Model) attnOutput(l *layer, x, a *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor {
	c := m.Config
	B, T := st.batch, st.seq
	H, hd := int64(c.NumAttentionHeads), int64(c.HeadDim)
	a = a.MustTranspose(1, 2, true).MustReshape([]int64{B, T, H * hd}, true)
	o := m.project(l.o, a)
	a.MustDrop()
	x = x.MustAdd(o, true)
	o.MustDrop()

	h := rmsNorm(x, l.postNorm, c.RMSNormEps)
	var y *ts.Tensor
	if c.IsMoE() {
		y = m.moe(l, h, st, aux)
	} else {
		y = m.mlp(l.gate, l.up, l.down, h)
	}
	h.MustDrop()
	x = x.MustAdd(y, true)
	y.MustDrop()
	return x
}

func (m *Model) mlp(gate, up, down *linear, h *ts.Tensor) *ts.Tensor {
	g := m.project(gate, h).MustSilu(true)
	u := m.project(up, h)
	g = g.MustMul(u, true)
	u.MustDrop()
	y := m.project(down, g)
	g.MustDrop()
	return y
}

// rope applies rotary embeddings: x·cos + rotate_half(x)·sin, where the
// sign of rotate_half lives in st.sin. It consumes x.
func rope(x *ts.Tensor, st *fwdState) *ts.Tensor {
	half := x.MustSize()[3] / 2
	x1 := x.MustNarrow(3, 0, half, false)
	x2 := x.MustNarrow(3, half, half, false)
	rot := ts.MustCat([]*ts.Tensor{x2, x1}, 3)
	x1.MustDrop()
	x2.MustDrop()
	rot = rot.MustMul(st.sin, true)
	y := x.MustMul(st.cos, true)
	y = y.MustAdd(rot, true)
	rot.MustDrop()
	return y
}

// moeStats accumulates the per-layer statistics of the load-balancing loss.
type moeStats struct {
	tokensPerExpert *ts.Tensor // Σ over layers of [k, E] routed shares
	probPerExpert   *ts.Tensor // Σ over layers of [E] mean router probability
}

func (s *moeStats) drop() {
	for _, t := range []*ts.Tensor{s.tokensPerExpert, s.probPerExpert} {
		if t != nil {
			t.MustDrop()
		}
	}
}

func accumulate(sum **ts.Tensor, t *ts.Tensor) {
	if *sum == nil {
		*sum = t
		return
	}
	*sum = (*sum).MustAdd(t, true)
	t.MustDrop()
}

// loss is transformers' load_balancing_loss_func: E · Σ tokens_per_expert ·
// router_prob_per_expert, both averaged over layers and unpadded tokens.
func (s *moeStats) loss(E, L int) *ts.Tensor {
	p := s.probPerExpert.MustUnsqueeze(0, false)
	l := s.tokensPerExpert.MustMul(p, false).MustSum(gotch.Float, true)
	p.MustDrop()
	return l.MustMulScalar(ts.FloatScalar(float64(E)/float64(L*L)), true)
}

// moe is Mixtral's sparse block: softmax router, top-k experts per token
// with renormalised weights.
func (m *Model) moe(l *layer, h *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor {
	c := m.Config
	B, T, D := st.batch, st.seq, int64(c.HiddenSize)
	E, K := int64(c.NumLocalExperts), int64(c.NumExpertsPerTok)
	N := B * T
	flat := h.MustView([]int64{N, D}, false)
	logits := m.project(l.router, flat)
	probs := logits.MustSoftmax(-1, gotch.Float, true) // [N, E]
	topW, topI := probs.MustTopk(K, -1, true, true, false)
	wSum := topW.MustSumDimIntlist([]int64{-1}, true, gotch.Float, false)
	topW = topW.MustDiv(wSum, true)
	wSum.MustDrop()

	// Load-balancing statistics over unpadded tokens.
	oneHot := topI.MustOneHot(E, false).MustTotype(gotch.Float, true) // [N, K, E]
	var tpe, ppe *ts.Tensor
	if st.valid != nil {
		n := st.valid.MustSum(gotch.Float, false)
		w := st.valid.MustView([]int64{N, 1, 1}, false)
		tpe = oneHot.MustMul(w, true).MustSumDimIntlist([]int64{0}, false, gotch.Float, true).MustDiv(n, true)
		w.MustDrop()
		w = st.valid.MustView([]int64{N, 1}, false)
		ppe = probs.MustMul(w, false).MustSumDimIntlist([]int64{0}, false, gotch.Float, true).MustDiv(n, true)
		w.MustDrop()
		n.MustDrop()
	} else {
		tpe = oneHot.MustMeanDim([]int64{0}, false, gotch.Float, true)
		ppe = probs.MustMeanDim([]int64{0}, false, gotch.Float, false)
	}
	accumulate(&aux.tokensPerExpert, tpe)
	accumulate(&aux.probPerExpert, ppe)
	probs.MustDrop()

	// Route on the device: per expert, the (token, slot) pairs that chose
	// it, in token order (what Mixtral's torch.where does). Only the
	// count, a shape, reaches the host; no routing table is copied.
	type route struct{ rows, slots *ts.Tensor }
	routes := make([]route, E)
	for e := range E {
		hit := topI.MustEq(ts.IntScalar(e), false)
		nz := hit.MustNonzero(true) // [n, 2]: token, slot
		if nz.MustSize()[0] == 0 {
			nz.MustDrop()
			continue
		}
		rows := nz.MustSelect(1, 0, false)
		k := nz.MustSelect(1, 1, false)
		slots := rows.MustMulScalar(ts.IntScalar(K), false).MustAdd(k, true)
		k.MustDrop()
		nz.MustDrop()
		routes[e] = route{rows, slots}
	}
	topI.MustDrop()
	wFlat := topW.MustView([]int64{N * K}, true)
	if wFlat.DType() != h.DType() {
		wFlat = wFlat.MustTotype(h.DType(), true)
	}
	out := ts.MustZeros([]int64{N, D}, h.DType(), m.opts.device())
	for e := range E {
		idx, slot := routes[e].rows, routes[e].slots
		if idx == nil {
			continue
		}
		xe := flat.MustIndexSelect(0, idx, false)
		ex := l.experts[e]
		ye := m.mlp(ex.w1, ex.w3, ex.w2, xe)
		xe.MustDrop()
		we := wFlat.MustIndexSelect(0, slot, false).MustUnsqueeze(1, true)
		ye = ye.MustMul(we, true)
		we.MustDrop()
		out = out.MustIndexAdd(0, idx, ye, true)
		ye.MustDrop()
		idx.MustDrop()
		slot.MustDrop()
	}
	wFlat.MustDrop()
	flat.MustDrop()
	return out.MustView([]int64{B, T, D}, true)
}
