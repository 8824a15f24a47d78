package train

import (
	"fmt"

	"github.com/pltune/pltune/tokenize"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// LMObjective is language modelling — continual pre-training on packed raw
// text and SFT on chat samples alike: the summed cross-entropy of every
// labelled next token. A token is predicted only from its own segment (its
// packed sequence): the first token of a segment is never a target of the
// previous one. Mixtral's router load-balancing loss is added, weighted by
// router_aux_loss_coef, per trained token, when the config's
// output_router_logits is set (as transformers adds it only then).
type LMObjective struct {
	Model *Model
	// Rows holds the rows in memory; Source, when set, gives them on
	// demand instead (a token store on disk).
	Rows   []tokenize.PackedRow
	Source RowSource
	PadID  int

	// last caches the rows Units read for the Loss calls that follow (the
	// loop counts a whole window's units first); the first Units call
	// after a Loss starts a new cache, so it holds one window at most.
	last     map[int]tokenize.PackedRow
	lastErr  error
	consumed bool
}

// RowSource gives training rows by number, so a corpus larger than memory
// can be trained on: tokstore's rows (a memory-mapped token store) are
// one. Row is called from the training goroutine only.
type RowSource interface {
	Len() int
	Row(i int) (tokenize.PackedRow, error)
}

// NewLMObjective returns the objective over rows (tokenize.Pack,
// tokenize.PretrainRows, or single sequences' Row()).
func NewLMObjective(m *Model, rows []tokenize.PackedRow, padID int) *LMObjective {
	return &LMObjective{Model: m, Rows: rows, PadID: padID}
}

// NewLMObjectiveFrom returns the objective over the rows of src, read as
// the training loop asks for them.
func NewLMObjectiveFrom(m *Model, src RowSource, padID int) *LMObjective {
	return &LMObjective{Model: m, Source: src, PadID: padID}
}

// Len is the number of rows.
func (o *LMObjective) Len() int {
	if o.Source != nil {
		return o.Source.Len()
	}
	return len(o.Rows)
}

// row returns row i from memory or from the source.
func (o *LMObjective) row(i int) (tokenize.PackedRow, error) {
	if i < 0 || i >= o.Len() {
		return tokenize.PackedRow{}, fmt.Errorf("train: row %d out of range [0, %d)", i, o.Len())
	}
	if o.Source == nil {
		return o.Rows[i], nil
	}
	if r, ok := o.last[i]; ok {
		return r, nil
	}
	r, err := o.Source.Row(i)
	if err != nil {
		return r, fmt.Errorf("train: reading row %d: %w", i, err)
	}
	return r, nil
}

// Units counts the trained next-token predictions of rows idx. A row the
// source cannot read counts nothing; DataErr and Loss report it.
func (o *LMObjective) Units(idx []int) int {
	n := 0
	if o.Source != nil && (o.last == nil || o.consumed) {
		o.last, o.lastErr, o.consumed = map[int]tokenize.PackedRow{}, nil, false
	}
	for _, i := range idx {
		r, err := o.row(i)
		if err != nil {
			o.lastErr = err
			continue
		}
		if o.Source != nil {
			o.last[i] = r
		}
		for t := 0; t+1 < len(r.IDs); t++ {
			if trainedTarget(&r, t) {
				n++
			}
		}
	}
	return n
}

// DataErr is the error of the last Units call's reads, if any.
func (o *LMObjective) DataErr() error { return o.lastErr }

// DataFingerprint identifies the source's rows when it can (a token
// store's Fingerprint), so a resumed run can refuse other data.
func (o *LMObjective) DataFingerprint() string {
	if f, ok := o.Source.(interface{ Fingerprint() string }); ok {
		return f.Fingerprint()
	}
	return ""
}

// trainedTarget tells whether position t predicts a trained token at t+1
// of the same segment.
func trainedTarget(r *tokenize.PackedRow, t int) bool {
	if r.Labels[t+1] == tokenize.IgnoreIndex {
		return false
	}
	return len(r.SegmentIDs) == 0 || (r.SegmentIDs[t+1] == r.SegmentIDs[t] && r.SegmentIDs[t] != 0)
}

// withSegments gives a row without segment or position ids (one sequence)
// segment 1 and positions 0…n-1, so Collate's zero segments mark padding
// only.
func withSegments(r tokenize.PackedRow) tokenize.PackedRow {
	if len(r.SegmentIDs) == 0 {
		r.SegmentIDs = make([]int, len(r.IDs))
		for i := range r.SegmentIDs {
			r.SegmentIDs[i] = 1
		}
	}
	if len(r.PositionIDs) == 0 {
		r.PositionIDs = make([]int, len(r.IDs))
		for i := range r.PositionIDs {
			r.PositionIDs[i] = i
		}
	}
	return r
}

// batchTensors turns collated rows into [B, T] int64 tensors: ids,
// positions, segments, attention mask, and next-token targets (IgnoreIndex
// where nothing is trained).
type batchTensors struct {
	ids, pos, seg, mask, targets *ts.Tensor
	tokens                       int
}

func (b *batchTensors) drop() {
	for _, t := range []*ts.Tensor{b.ids, b.pos, b.seg, b.mask, b.targets} {
		if t != nil {
			t.MustDrop()
		}
	}
}

func (o *LMObjective) batch(idx []int) (*batchTensors, error) {
	o.consumed = true
	rows := make([]tokenize.PackedRow, len(idx))
	for i, j := range idx {
		r, err := o.row(j)
		if err != nil {
			return nil, err
		}
		rows[i] = withSegments(r)
	}
	c := tokenize.Collate(rows, o.PadID)
	B, T := len(rows), len(c.IDs[0])
	flat := func(m [][]int) []int64 {
		out := make([]int64, 0, B*T)
		for _, r := range m {
			for _, v := range r {
				out = append(out, int64(v))
			}
		}
		return out
	}
	tg := make([]int64, B*T)
	tokens := 0
	for b := range B {
		padded := tokenize.PackedRow{IDs: c.IDs[b], Labels: c.Labels[b], SegmentIDs: c.SegmentIDs[b]}
		for t := range T {
			tg[b*T+t] = tokenize.IgnoreIndex
			if t+1 < T && trainedTarget(&padded, t) {
				tg[b*T+t] = int64(c.Labels[b][t+1])
			}
			if c.AttentionMask[b][t] != 0 {
				tokens++
			}
		}
	}
	shape := []int64{int64(B), int64(T)}
	mk := func(v []int64) *ts.Tensor { return ts.MustOfSlice(v).MustView(shape, true) }
	return &batchTensors{
		ids: mk(flat(c.IDs)), pos: mk(flat(c.PositionIDs)), seg: mk(flat(c.SegmentIDs)),
		mask: mk(flat(c.AttentionMask)), targets: mk(tg), tokens: tokens,
	}, nil
}

// Loss runs the model on rows idx.
func (o *LMObjective) Loss(idx []int) (*Loss, error) {
	bt, err := o.batch(idx)
	if err != nil {
		return nil, err
	}
	defer bt.drop()
	if o.Model.GradientCheckpointing() {
		return o.checkpointedLoss(idx, bt)
	}
	out, err := o.Model.Forward(bt.ids, ForwardOptions{PositionIDs: bt.pos, SegmentIDs: bt.seg, AttentionMask: bt.mask})
	if err != nil {
		return nil, err
	}
	V := int64(o.Model.Config.VocabSize)
	logits := out.Logits.MustView([]int64{-1, V}, false)
	tgt := bt.targets.MustView([]int64{-1}, false)
	if dev := o.Model.opts.device(); !sameDevice(dev, gotch.CPU) {
		tgt = tgt.MustTo(dev, true)
	}
	sum := logits.MustCrossEntropyLoss(tgt, ts.NewTensor(), 2, tokenize.IgnoreIndex, 0, true) // reduction: sum
	tgt.MustDrop()
	metrics := map[string]*ts.Tensor{}
	sum = o.addAux(idx, sum, out.AuxLoss, metrics)
	out.Logits.MustDrop()
	if out.AuxLoss != nil {
		out.AuxLoss.MustDrop()
	}
	return &Loss{Sum: sum, Tokens: bt.tokens, DeviceMetrics: metrics}, nil
}

// checkpointedLoss is Loss with activation checkpointing: the summed
// cross-entropy is −Σ log p(target) over the trained targets, and its
// backward goes through the pass.
func (o *LMObjective) checkpointedLoss(idx []int, bt *batchTensors) (*Loss, error) {
	p, err := o.Model.ForwardLogProbs(bt.ids, bt.targets, ForwardOptions{PositionIDs: bt.pos, SegmentIDs: bt.seg, AttentionMask: bt.mask})
	if err != nil {
		return nil, err
	}
	sum := p.LogProbs.MustSum(gotch.Float, false).MustNeg(true)
	metrics := map[string]*ts.Tensor{}
	sum = o.addAux(idx, sum, p.AuxLoss, metrics)
	return &Loss{Sum: sum, Tokens: bt.tokens, DeviceMetrics: metrics, Pass: p}, nil
}

// addAux adds Mixtral's router loss (aux, nil for dense models), weighted
// by router_aux_loss_coef per trained token of rows idx, to sum and records
// it in metrics; it consumes sum and leaves aux.
func (o *LMObjective) addAux(idx []int, sum, aux *ts.Tensor, metrics map[string]*ts.Tensor) *ts.Tensor {
	if aux == nil {
		return sum
	}
	units := float64(o.Units(idx))
	w := aux.MustMulScalar(ts.FloatScalar(o.Model.Config.RouterAuxLossCoef*units), false)
	metrics["aux_loss"] = aux.MustDetach(false).MustMulScalar(ts.FloatScalar(units), true)
	sum = sum.MustAdd(w, true)
	w.MustDrop()
	return sum
}
