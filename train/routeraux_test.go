package train

import (
	"math"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
)

// checkRouterAuxLoss compares LMObjective's loss on the request's batch
// with transformers' (want, from hf.py): as a transformers-saved Mixtral
// config leaves it (output_router_logits false) the loss is the
// cross-entropy alone and Forward returns no router loss; with
// OutputRouterLogits set it is the cross-entropy plus
// router_aux_loss_coef times transformers' aux_loss, which Forward's
// AuxLoss equals.
func checkRouterAuxLoss(t *testing.T, m *Model, req *hfRequest, want hfLogits) {
	t.Helper()
	if m.Config.OutputRouterLogits {
		t.Fatal("transformers' Mixtral config read with output_router_logits on")
	}
	if c := float64(want["router_aux_loss_coef"][0]); math.Abs(c-m.Config.RouterAuxLossCoef) > 1e-9 {
		t.Errorf("router_aux_loss_coef %g; transformers %g", m.Config.RouterAuxLossCoef, c)
	}
	var rows []tokenize.PackedRow
	for _, r := range req.Batch {
		row := tokenize.PackedRow{}
		for i, id := range r {
			row.IDs = append(row.IDs, int(id))
			row.Labels = append(row.Labels, int(id))
			row.PositionIDs = append(row.PositionIDs, i)
			row.SegmentIDs = append(row.SegmentIDs, 1)
		}
		rows = append(rows, row)
	}
	obj := &LMObjective{Model: m, Rows: rows}
	idx := []int{0, 1}
	loss := func() (mean float64, aux bool) {
		var got float64
		torchx.NoGrad(func() {
			l, err := obj.Loss(idx)
			if err != nil {
				t.Fatal(err)
			}
			got = float64(values(l.Sum)[0]) / float64(obj.Units(idx))
			_, aux = l.DeviceMetrics["aux_loss"]
			l.Sum.MustDrop()
			for _, d := range l.DeviceMetrics {
				d.MustDrop()
			}
		})
		return got, aux
	}
	rel := func(a, b float32) float64 { return math.Abs(float64(a-b)) / math.Abs(float64(b)) }
	got, aux := loss()
	if d := rel(float32(got), want["loss_default"][0]); d > hfRelTol || aux {
		t.Errorf("Mixtral loss without output_router_logits %g (aux metric %v); transformers %g", got, aux, want["loss_default"][0])
	}
	m.Config.OutputRouterLogits = true
	defer func() { m.Config.OutputRouterLogits = false }()
	got, aux = loss()
	if d := rel(float32(got), want["loss_router"][0]); d > hfRelTol || !aux {
		t.Errorf("Mixtral loss with output_router_logits %g (aux metric %v); transformers %g", got, aux, want["loss_router"][0])
	}
	// The two transformers losses differ by coef·aux: the comparison
	// above could not pass with the router loss left out.
	if d := rel(want["loss_router"][0]-want["loss_default"][0], want["router_aux_loss_coef"][0]*want["aux_loss"][0]); d > 1e-3 {
		t.Errorf("transformers' losses differ by %g; coef·aux is %g", want["loss_router"][0]-want["loss_default"][0], want["router_aux_loss_coef"][0]*want["aux_loss"][0])
	}
	if math.Abs(float64(want["loss_router"][0]-want["loss_default"][0])) < 10*hfRelTol*float64(want["loss_default"][0]) {
		t.Errorf("router loss too small to tell apart: %g", want["loss_router"][0]-want["loss_default"][0])
	}
	var fwdAux float32
	torchx.NoGrad(func() {
		bt, err := obj.batch(idx)
		if err != nil {
			t.Fatal(err)
		}
		defer bt.drop()
		out, err := m.Forward(bt.ids, ForwardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Drop()
		if out.AuxLoss == nil {
			t.Fatal("Forward with output_router_logits returned no router loss")
		}
		fwdAux = values(out.AuxLoss)[0]
	})
	if d := rel(fwdAux, want["aux_loss"][0]); d > hfRelTol {
		t.Errorf("Mixtral aux_loss %g; transformers %g", fwdAux, want["aux_loss"][0])
	}
}
