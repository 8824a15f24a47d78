package train

import (
	"fmt"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Activation checkpointing. A training step is split into a body (the
// decoder layers) and a head (final norm, LM head, the objective's loss).
// The body runs without gradients, keeping only each layer's input and its
// attention's output (no T×T tensor, no activations); the
// head turns the last hidden state, made a leaf, into per-position target
// log-probabilities in token chunks, never holding all [T, V] logits. In
// backward the head is redone chunk by chunk and the layers are walked
// backwards, each recomputed with gradients from its saved input: the
// backward of a tensor y with gradient dy is the backward of the scalar
// Σ y·dy, so no backward(tensor, grad) binding is needed.

// SetGradientCheckpointing turns activation checkpointing per decoder layer
// on or off (ModelOptions.GradientCheckpointing). It acts on
// ForwardLogProbs, which the objectives use in training.
func (m *Model) SetGradientCheckpointing(on bool) { m.opts.GradientCheckpointing = on }

// GradientCheckpointing tells whether activation checkpointing is on.
func (m *Model) GradientCheckpointing() bool { return m.opts.GradientCheckpointing }

// Pass is ForwardLogProbs's result: the log-probabilities an objective
// builds its loss from, and the backward of that loss through the model.
type Pass struct {
	// LogProbs is [batch, seq] float32: log p(targets[b, t] | tokens ≤ t),
	// 0 where the target is tokenize.IgnoreIndex.
	LogProbs *ts.Tensor
	// AuxLoss is Output.AuxLoss (Mixtral with output_router_logits), nil
	// otherwise.
	AuxLoss *ts.Tensor
	tape    *tape
}

// tape is what a checkpointed pass keeps for its backward.
type tape struct {
	m      *Model
	st     *fwdState
	ids    *ts.Tensor   // [B, T] on the model's device
	inputs []*ts.Tensor // each layer's input, without graph
	// attnOut is each layer's attention output [B, H, T, hd] from the
	// forward pass (T·D values): with it the layer's last segment and its
	// backward run before the attention is recomputed, block by block.
	attnOut []*ts.Tensor
	seeds   []int64    // per-layer dropout seeds (nil without dropout)
	hidden  *ts.Tensor // the last layer's output as a leaf
	normed  *ts.Tensor // final norm of hidden, with graph
	targets *ts.Tensor // [B, T] int64 on the device
	ppe     *ts.Tensor // Σ router probabilities per expert, a leaf
	tpe     *ts.Tensor // Σ routed shares per expert
	lse     *ts.Tensor // ZeRO-3's sharded head: per-token log-sum-exp
}

func (t *tape) drop() {
	for _, xs := range [][]*ts.Tensor{t.inputs, t.attnOut} {
		for _, x := range xs {
			x.MustDrop()
		}
	}
	t.inputs, t.attnOut = nil, nil
	for _, x := range []*ts.Tensor{t.ids, t.hidden, t.normed, t.targets, t.ppe, t.tpe, t.lse} {
		if x != nil {
			x.MustDrop()
		}
	}
	t.ids, t.hidden, t.normed, t.targets, t.ppe, t.tpe, t.lse = nil, nil, nil, nil, nil, nil, nil
	if t.st != nil {
		t.st.drop()
		t.st = nil
	}
}

// Drop frees the pass (its backward too, when Backward was not called).
func (p *Pass) Drop() {
	for _, t := range []*ts.Tensor{p.LogProbs, p.AuxLoss} {
		if t != nil {
			t.MustDrop()
		}
	}
	p.LogProbs, p.AuxLoss = nil, nil
	if p.tape != nil {
		p.tape.drop()
		p.tape = nil
	}
}

// ForwardLogProbs runs the model on input [batch, seq] and returns the
// log-probability of targets [batch, seq] (int64, tokenize.IgnoreIndex where
// nothing is predicted) at each position. With gradient checkpointing on and
// grad mode on, the layers keep only their inputs (and their attention's
// output, T·D values) and Pass.Backward recomputes them; otherwise it is Forward followed by a log-softmax, and
// Backward is the loss's own.
func (m *Model) ForwardLogProbs(input, targets *ts.Tensor, opts ForwardOptions) (*Pass, error) {
	if s, ts0 := targets.MustSize(), input.MustSize(); len(s) != 2 || len(ts0) != 2 || s[0] != ts0[0] || s[1] != ts0[1] {
		return nil, fmt.Errorf("train: ForwardLogProbs: targets shape %v; want %v like the input", targets.MustSize(), input.MustSize())
	}
	if opts.Cache != nil || opts.LastOnly {
		return nil, fmt.Errorf("train: ForwardLogProbs: Cache and LastOnly are for generation")
	}
	if !m.opts.GradientCheckpointing {
		out, err := m.Forward(input, opts)
		if err != nil {
			return nil, err
		}
		tgt := toDevice(targets, m.opts.device())
		valid := tgt.MustGe(ts.IntScalar(0), false)
		clamped := tgt.MustClampMin(ts.IntScalar(0), tgt != targets)
		lp := TokenLogProbs(out.Logits, clamped)
		clamped.MustDrop()
		out.Logits.MustDrop()
		lp = lp.MustMul(valid, true)
		valid.MustDrop()
		return &Pass{LogProbs: lp, AuxLoss: out.AuxLoss}, nil
	}
	return m.checkpointedPass(input, targets, opts)
}

// Backward runs the backward pass of loss, a scalar computed from the
// pass's LogProbs and AuxLoss, through the model, accumulating parameter
// gradients; it frees the pass's saved state.
func (p *Pass) Backward(loss *ts.Tensor) error {
	if p.tape == nil {
		return loss.Backward()
	}
	t := p.tape
	defer func() {
		t.drop()
		p.tape = nil
	}()
	return t.backward(p, loss)
}

func (m *Model) checkpointedPass(input, targets *ts.Tensor, opts ForwardOptions) (*Pass, error) {
	shape := input.MustSize()
	if err := m.checkInput(input, opts); err != nil {
		return nil, err
	}
	st, err := m.prepareState(shape[0], shape[1], opts, false)
	if err != nil {
		return nil, err
	}
	grad := torchx.GradEnabled()
	t := &tape{m: m, st: st}
	ok := false
	defer func() {
		if !ok {
			t.drop()
		}
	}()
	t.ids = toDevice(input, m.opts.device())
	if t.ids == input {
		t.ids = input.MustShallowClone()
	}
	if grad && m.train && m.lora.cfg != nil && m.lora.cfg.Dropout > 0 {
		// Dropout masks must be drawn again identically in the recompute:
		// each layer runs from its own seed, drawn from libtorch's
		// generator so the run stays reproducible from the trainer's seed.
		r := ts.MustRandint(1<<40, []int64{int64(len(m.net.Layers))}, gotch.Int64, gotch.CPU)
		t.seeds = r.Int64Values()
		r.MustDrop()
	}
	aux := m.newAux()
	if aux != nil {
		defer aux.drop()
	}
	var x *ts.Tensor
	var uerr error
	torchx.NoGrad(func() {
		if x, uerr = m.embedTokens(t.ids); uerr != nil { // ZeRO-3 hook (zero_vocab.go)
			return
		}
		for i, l := range m.net.Layers {
			if grad {
				t.inputs = append(t.inputs, x.MustShallowClone())
			}
			if t.seeds != nil {
				torchx.ManualSeed(t.seeds[i])
			}
			if uerr = m.gatherUnit(i, false); uerr != nil {
				return
			}
			if !grad {
				x = m.layerForward(i, l, x, st, aux)
			} else {
				q, k, v := m.attnInputs(i, l, x, st)
				o, err := attention(q, k, v, st.attn, m.attnScale())
				q.MustDrop()
				k.MustDrop()
				v.MustDrop()
				if err != nil {
					panic(err)
				}
				t.attnOut = append(t.attnOut, o.MustShallowClone())
				x = m.attnOutput(l, x, o, st, aux)
			}
			if uerr = m.releaseUnit(i, false); uerr != nil {
				return
			}
		}
	})
	if uerr != nil {
		if x != nil {
			x.MustDrop()
		}
		return nil, uerr
	}
	// The head (final norm, LM head) stays gathered until its backward.
	if err := m.gatherUnit(m.headUnit(), grad); err != nil {
		x.MustDrop()
		return nil, err
	}
	t.hidden = x
	if grad {
		x.MustRequiresGrad_(true)
	}
	t.normed = m.net.Norm.Forward(x)
	t.targets = toDevice(targets, m.opts.device())
	if t.targets == targets {
		t.targets = targets.MustShallowClone()
	}
	nd := t.normed.MustDetach(false)
	var lp *ts.Tensor
	if z := m.zeroVocab(); z != nil && z.headP >= 0 { // ZeRO-3 hook (zero_vocab.go)
		lp, t.lse, err = z.headForward(nd, t.targets)
	} else {
		lp, err = m.Head().TokenLogProbs(nd, t.targets)
	}
	nd.MustDrop()
	if err != nil {
		return nil, err
	}
	if grad {
		lp.MustRequiresGrad_(true)
	}
	p := &Pass{LogProbs: lp}
	if aux != nil {
		t.tpe = aux.tokensPerExpert.MustShallowClone()
		t.ppe = aux.probPerExpert.MustDetach(false)
		if grad {
			t.ppe.MustRequiresGrad_(true)
		}
		s := moeStats{tokensPerExpert: t.tpe, probPerExpert: t.ppe}
		p.AuxLoss = s.loss(m.Config.NumLocalExperts, len(m.net.Layers))
	}
	ok = true
	if !grad {
		t.drop()
		return p, m.releaseUnit(m.headUnit(), false)
	}
	p.tape = t
	return p, nil
}

// backwardOf runs the backward of Σ y·dy, which gives every leaf the
// gradient it would get from y's gradient dy.
func backwardOf(y, dy *ts.Tensor) error {
	s := y.MustMul(dy, false).MustSum(gotch.Float, true)
	err := s.Backward()
	s.MustDrop()
	return err
}

// gradOf takes x's gradient (nil when none reached it).
func gradOf(x *ts.Tensor) *ts.Tensor {
	g := x.MustGrad(false)
	if !g.MustDefined() {
		g.MustDrop()
		return nil
	}
	return g
}

func (t *tape) backward(p *Pass, loss *ts.Tensor) error {
	m := t.m
	if err := loss.Backward(); err != nil {
		return fmt.Errorf("train: backward of the loss: %w", err)
	}
	dlp := gradOf(p.LogProbs)
	var dppe *ts.Tensor
	if t.ppe != nil {
		dppe = gradOf(t.ppe)
		if dppe != nil {
			defer dppe.MustDrop()
		}
	}
	// Head: the chunked head's backward from dlp gives the gradients wrt
	// the normed hidden states (and the head weight when trained); one
	// backward takes them through the final norm.
	if z := m.zeroVocab(); z != nil && z.headP >= 0 { // ZeRO-3 hook (zero_vocab.go)
		if err := t.zeroHeadBackward(z, dlp); err != nil {
			return err
		}
	} else if dlp != nil {
		head := m.Head()
		nd := t.normed.MustDetach(false)
		g, err := head.TokenLogProbsBackward(nd, t.targets, dlp)
		nd.MustDrop()
		dlp.MustDrop()
		if err != nil {
			return err
		}
		outs, grads := []*ts.Tensor{t.normed}, []*ts.Tensor{g.Hidden}
		if g.Weight != nil {
			outs, grads = append(outs, head.W), append(grads, g.Weight)
		}
		err = backwardWith(outs, grads)
		g.Drop()
		if err != nil {
			return fmt.Errorf("train: backward of the LM head and final norm: %w", err)
		}
	}
	t.normed.MustDrop()
	t.normed = nil
	if err := m.releaseUnit(m.headUnit(), true); err != nil {
		return err
	}
	dy := gradOf(t.hidden)
	t.hidden.MustDrop()
	t.hidden = nil
	for i := len(m.net.Layers) - 1; i >= 0; i-- {
		x := t.inputs[i].MustDetach(false)
		t.inputs[i].MustDrop()
		t.inputs = t.inputs[:i]
		x.MustRequiresGrad_(true)
		if t.seeds != nil {
			torchx.ManualSeed(t.seeds[i])
		}
		o := t.attnOut[i]
		t.attnOut = t.attnOut[:i]
		err := m.gatherUnit(i, true)
		if err == nil {
			err = m.layerBackward(i, x, o, dy, dppe, t.st)
		}
		if err == nil {
			err = m.releaseUnit(i, true)
		}
		o.MustDrop()
		if err != nil {
			x.MustDrop()
			if dy != nil {
				dy.MustDrop()
			}
			return err
		}
		if dy != nil {
			dy.MustDrop()
		}
		dy = gradOf(x)
		x.MustDrop()
	}
	if dy == nil {
		return nil
	}
	defer dy.MustDrop()
	if !m.net.Embed.Weight.MustRequiresGrad() {
		return nil
	}
	if z := m.zeroVocab(); z != nil && z.embedP >= 0 { // ZeRO-3 hook (zero_vocab.go)
		return z.embedBackward(t.ids, dy)
	}
	if err := m.gatherUnit(embedUnit, true); err != nil {
		return err
	}
	e := m.net.Embed.Forward(t.ids)
	err := backwardOf(e, dy)
	e.MustDrop()
	if err != nil {
		return fmt.Errorf("train: backward of the embedding: %w", err)
	}
	return m.releaseUnit(embedUnit, true)
}

// layerBackward recomputes decoder layer i from its input x (a leaf
// requiring grad) and runs its backward from dy, the gradient of its
// output (nil: none), and dppe, that of the summed router probabilities
// (Mixtral; nil otherwise). The layer runs as three segments:
// attnInputs and attnOutput with autograd (the latter from the forward's
// attention output o), the attention between them recomputed by
// blockwiseAttentionGrads, which keeps no T×S tensor — only one query
// block's scores exist at a time.
func (m *Model) layerBackward(i int, x, o, dy, dppe *ts.Tensor, st *fwdState) error {
	l := m.net.Layers[i]
	q, k, v := m.attnInputs(i, l, x, st)
	defer func() {
		q.MustDrop()
		k.MustDrop()
		v.MustDrop()
	}()
	scale := m.attnScale()
	if sdpaAvailable() {
		// SDPA's kernels keep only the output and logsumexp for their
		// backward, so the layer is recomputed whole under autograd, with
		// the plain path's kernels (the blockwise path rounds differently
		// from SDPA's).
		return m.layerBackwardSDPA(i, l, x, q, k, v, dy, dppe, st, scale)
	}
	ol := o.MustDetach(false)
	defer ol.MustDrop()
	ol.MustRequiresGrad_(true)
	if err := m.outputBackward(i, l, x, ol.MustShallowClone(), dy, dppe, st); err != nil {
		return err
	}
	dO := gradOf(ol)
	if dO == nil || !q.MustRequiresGrad() && !k.MustRequiresGrad() && !v.MustRequiresGrad() {
		if dO != nil {
			dO.MustDrop()
		}
		return nil
	}
	dq, dk, dv, err := blockwiseAttentionGrads(q, k, v, dO, st.attn, scale)
	dO.MustDrop()
	if err != nil {
		return fmt.Errorf("train: backward of layer %d's attention: %w", i, err)
	}
	var outs, grads []*ts.Tensor
	for j, t := range []*ts.Tensor{q, k, v} {
		g := []*ts.Tensor{dq, dk, dv}[j]
		if t.MustRequiresGrad() {
			outs, grads = append(outs, t), append(grads, g)
		}
	}
	err = backwardWith(outs, grads)
	dq.MustDrop()
	dk.MustDrop()
	dv.MustDrop()
	if err != nil {
		return fmt.Errorf("train: backward of layer %d's attention inputs: %w", i, err)
	}
	return nil
}

// layerBackwardSDPA is layerBackward's recompute where libtorch has
// scaled_dot_product_attention: attention and the last segment run under
// autograd from q, k, v.
func (m *Model) layerBackwardSDPA(i int, l *decoderLayer, x, q, k, v, dy, dppe *ts.Tensor, st *fwdState, scale float64) error {
	a, err := attention(q, k, v, st.attn, scale)
	if err != nil {
		return fmt.Errorf("train: recomputing layer %d: %w", i, err)
	}
	return m.outputBackward(i, l, x, a, dy, dppe, st)
}

// outputBackward runs a layer's last segment (attnOutput) on x and the
// attention output a, which it consumes, and its backward from dy (the
// layer output's gradient) and dppe (that of the summed router
// probabilities; Mixtral), accumulating into the leaves' gradients.
func (m *Model) outputBackward(i int, l *decoderLayer, x, a, dy, dppe *ts.Tensor, st *fwdState) error {
	aux := m.newAux()
	if aux != nil {
		defer aux.drop()
	}
	y := m.attnOutput(l, x.MustShallowClone(), a, st, aux)
	var s *ts.Tensor
	if dy != nil {
		s = mulSum(y, dy)
	}
	y.MustDrop()
	if dppe != nil && aux.probPerExpert.MustRequiresGrad() {
		accumulate(&s, mulSum(aux.probPerExpert, dppe))
	}
	if s == nil {
		return nil
	}
	err := s.Backward()
	s.MustDrop()
	if err != nil {
		return fmt.Errorf("train: backward of layer %d: %w", i, err)
	}
	return nil
}

// mulSum is Σ y·dy as an fp32 scalar with y's graph.
func mulSum(y, dy *ts.Tensor) *ts.Tensor {
	return y.MustMul(dy, false).MustSum(gotch.Float, true)
}

// checkInput validates Forward's input and options.
func (m *Model) checkInput(input *ts.Tensor, opts ForwardOptions) error {
	shape := input.MustSize()
	if len(shape) != 2 || shape[0] == 0 || shape[1] == 0 {
		return fmt.Errorf("train: Forward: input shape %v; want [batch, seq] with both non-zero", shape)
	}
	if input.DType() != gotch.Int64 {
		return fmt.Errorf("train: Forward: input dtype %v; want int64 token ids", input.DType())
	}
	for name, t := range map[string]*ts.Tensor{"PositionIDs": opts.PositionIDs, "SegmentIDs": opts.SegmentIDs, "AttentionMask": opts.AttentionMask} {
		if t == nil {
			continue
		}
		if s := t.MustSize(); len(s) != 2 || s[0] != shape[0] || s[1] != shape[1] {
			return fmt.Errorf("train: Forward: %s shape %v; want %v like the input", name, s, shape)
		}
	}
	if mx, mn := tensorMaxMin(input); mn < 0 || mx >= int64(m.Config.VocabSize) {
		bad := mx
		if mn < 0 {
			bad = mn
		}
		return fmt.Errorf("train: Forward: token id %d outside the vocabulary [0, %d)", bad, m.Config.VocabSize)
	}
	return nil
}
