package train

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

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
	arch   architecture
	net    decoder

	invFreq *ts.Tensor // [head_dim/2] float32
	genEOS  []int      // generation_config.json's eos_token_id
	lora    loraState
	// train enables dropout in LoRA adapters.
	train bool
	// units, when set, gathers and frees sharded parameters around each
	// unit of a checkpointed pass (ZeRO stage 3; see zero3.go).
	units unitGatherer
	// genConfig is generation_config.json as read, kept so Save carries
	// the base's sampling settings over.
	genConfig map[string]json.RawMessage
}

// decoder is the module tree every architecture shares; the layers'
// feed-forward blocks are the architecture's own. The tags are the
// Hugging Face module paths (see bind.go).
type decoder struct {
	Embed  *Embedding      `hf:"model.embed_tokens"`
	Layers []*decoderLayer `hf:"model.layers"`
	Norm   *RMSNorm        `hf:"model.norm"`
	Head   *Linear         `hf:"lm_head"` // nil when tied to Embed
}

// architecture is what one model_type adds to the shared decoder.
type architecture struct {
	// feedForward builds one decoder layer's MLP block.
	feedForward func(c *Config) feedForward
	// routed says the block has a router whose load-balancing loss
	// training may add (Mixtral's output_router_logits).
	routed bool
}

// architectures maps config.json's model_type to its architecture; each
// architecture's file registers itself.
var architectures = map[string]architecture{}

func register(modelType string, a architecture) { architectures[modelType] = a }

func lookupArchitecture(c *Config) (architecture, error) {
	a, ok := architectures[c.ModelType]
	if !ok {
		return architecture{}, fmt.Errorf("train: config model_type %q is not supported; want one of %s", c.ModelType, strings.Join(slices.Sorted(maps.Keys(architectures)), ", "))
	}
	return a, nil
}

// newSkeleton builds a model's structure with no tensors yet.
func newSkeleton(cfg *Config, opts ModelOptions) (*Model, error) {
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := structure(cfg)
	if err != nil {
		return nil, err
	}
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
func structure(cfg *Config) (*Model, error) {
	a, err := lookupArchitecture(cfg)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, arch: a}
	m.lora.train = &m.train
	D, eps := cfg.HiddenSize, cfg.RMSNormEps
	m.net.Embed = newEmbedding(cfg.VocabSize, D)
	for range cfg.NumHiddenLayers {
		m.net.Layers = append(m.net.Layers, &decoderLayer{
			InputNorm: newRMSNorm(D, eps),
			Attn:      newSelfAttention(cfg),
			PostNorm:  newRMSNorm(D, eps),
			FFN:       a.feedForward(cfg),
		})
	}
	m.net.Norm = newRMSNorm(D, eps)
	if !cfg.TieWordEmbeddings {
		m.net.Head = newLinear(cfg.VocabSize, D)
	}
	return m, nil
}

// numParameters is the number of weights a model of this config holds
// (LoRA adapters aside), counted from the same tensor list checkpoints use.
func numParameters(c *Config) (int64, error) {
	m, err := structure(c)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, b := range m.bindings() {
		k := int64(1)
		for _, d := range b.shape {
			k *= d
		}
		n += k
	}
	return n, nil
}

// NewModel returns a randomly initialised model for cfg, initialised as
// transformers does: normal(0, initializer_range) projections and
// embeddings, unit norms.
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
			t = ts.MustRandn(b.shape, gotch.Float, m.opts.device()).MustMulScalar(ts.FloatScalar(cfg.InitializerRange), true)
			if m.opts.dtype() != gotch.Float {
				t = t.MustTotype(m.opts.dtype(), true)
			}
		}
		t.MustRequiresGrad_(m.lora.cfg == nil)
		*b.t = t
	}
	return m, nil
}

// Drop frees every tensor of the model (adapters included).
func (m *Model) Drop() {
	for _, b := range m.allBindings() {
		if *b.t != nil {
			(*b.t).MustDrop()
			*b.t = nil
		}
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
		out = append(out, Param{Name: b.name, T: *b.t, Trainable: m.lora.cfg == nil, NoDecay: b.noDecay})
	}
	for _, b := range m.adapterBindings() {
		out = append(out, Param{Name: b.name, T: *b.t, Trainable: true})
	}
	return out
}

// SetTraining turns dropout (in LoRA adapters) on or off. Models start in
// evaluation mode.
func (m *Model) SetTraining(on bool) { m.train = on }

// routerAux says whether passes compute the router's load-balancing loss:
// for a routed architecture with config.json's output_router_logits on,
// as transformers adds it to the loss only then.
func (m *Model) routerAux() bool { return m.arch.routed && m.Config.OutputRouterLogits }

// newAux returns the router statistics a pass accumulates, or nil when
// none are wanted.
func (m *Model) newAux() *moeStats {
	if !m.routerAux() {
		return nil
	}
	return &moeStats{}
}

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
	// nil for dense models and unless Config.OutputRouterLogits is set
	// (transformers' output_router_logits, off by default).
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
	x := m.net.Embed.Forward(ids)
	if ids != input {
		ids.MustDrop()
	}
	aux := m.newAux()
	if aux != nil {
		defer aux.drop()
	}
	for i, l := range m.net.Layers {
		x = m.layerForward(i, l, x, st, aux)
	}
	if opts.LastOnly {
		x = x.MustNarrow(1, shape[1]-1, 1, true)
	}
	h := m.net.Norm.Forward(x)
	x.MustDrop()
	logits := ts.MustLinear(h, m.Head().W, ts.None)
	h.MustDrop()
	if logits.DType() != gotch.Float {
		logits = logits.MustTotype(gotch.Float, true)
	}
	out := &Output{Logits: logits}
	if aux != nil {
		out.AuxLoss = aux.loss(m.Config.NumLocalExperts, len(m.net.Layers))
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
	if opts.AttentionMask != nil && m.routerAux() {
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
