package align

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// golden is testdata/reference.json, written by testdata/gen.py: fixed
// logits with TRL-style losses and gradients computed in PyTorch.
type golden struct {
	P, T, V int
	IDs     [][]int   `json:"ids"`
	Labels  [][]int   `json:"labels"`
	Logits  []float64 `json:"logits"`
	ORPO    struct {
		Beta          float64   `json:"beta"`
		LossSum       float64   `json:"loss_sum"`
		LogOdds       []float64 `json:"log_odds"`
		LogpsChosen   []float64 `json:"logps_chosen"`
		LogpsRejected []float64 `json:"logps_rejected"`
		Grad          []float64 `json:"grad"`
	} `json:"orpo"`
	ORPOPrompt struct {
		LossSum float64   `json:"loss_sum"`
		NLL     []float64 `json:"nll"`
	} `json:"orpo_nll_on_prompt"`
	DPO struct {
		Beta          float64   `json:"beta"`
		Reference     []float64 `json:"reference"`
		LossSum       float64   `json:"loss_sum"`
		LogpsChosen   []float64 `json:"logps_chosen"`
		LogpsRejected []float64 `json:"logps_rejected"`
		Grad          []float64 `json:"grad"`
	} `json:"dpo"`
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// pairs rebuilds the golden rows (chosen 0…P-1, rejected P…2P-1) as
// preference examples, cut at their last labelled or attended token.
func (g *golden) pairs() []tokenize.PreferenceExample {
	row := func(r int) tokenize.Sequence {
		n := g.T
		for n > 0 && g.Labels[r][n-1] == tokenize.IgnoreIndex {
			n--
		}
		return tokenize.Sequence{IDs: g.IDs[r][:n], Labels: g.Labels[r][:n]}
	}
	out := make([]tokenize.PreferenceExample, g.P)
	for i := range out {
		out[i] = tokenize.PreferenceExample{Chosen: row(i), Rejected: row(g.P + i)}
	}
	return out
}

// fixedLogits is a "model" that returns the golden logits whatever the
// input, and whose gradient lands in leaf.
func (g *golden) fixedLogits() (leaf *ts.Tensor, fwd forwardFunc) {
	leaf = ts.MustOfSlice(g.Logits).MustTotype(gotch.Float, true).
		MustView([]int64{int64(2 * g.P), int64(g.T), int64(g.V)}, true).MustSetRequiresGrad(true, true)
	return leaf, func(*ts.Tensor, train.ForwardOptions) (*train.Output, error) {
		return &train.Output{Logits: leaf.MustMulScalar(ts.FloatScalar(1), false)}, nil
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= 2e-5+2e-5*math.Abs(want) }

// TestMatchesPyTorchReference: on the same logits, ORPO (with and without
// the prompt in the NLL) and DPO give PyTorch's loss and gradients — with a
// chosen answer whose mean log-prob is −3.6e-7, where the odds need the
// stable log(1 − eˣ).
func TestMatchesPyTorchReference(t *testing.T) {
	g := loadGolden(t)
	pairs := g.pairs()
	idx := []int{0, 1, 2}
	grad := func(name string, leaf *ts.Tensor, l *train.Loss, want []float64) {
		t.Helper()
		if err := l.Sum.Backward(); err != nil {
			t.Fatal(err)
		}
		got := leaf.MustGrad(false).Float64Values(true)
		for i := range want {
			if !near(got[i], want[i]) {
				t.Fatalf("%s: ∂loss/∂logits[%d] = %.8g, PyTorch %.8g", name, i, got[i], want[i])
			}
		}
	}
	torchx.SetGradEnabled(true)

	leaf, fwd := g.fixedLogits()
	l, err := (&ORPO{Pairs: pairs, Config: ORPOConfig{Beta: g.ORPO.Beta}, forward: fwd}).Loss(idx)
	if err != nil {
		t.Fatal(err)
	}
	var odds, lc float64
	for i := range g.P {
		odds += g.ORPO.LogOdds[i]
		lc += g.ORPO.LogpsChosen[i]
	}
	if sum := l.Sum.Float64Values()[0]; !near(sum, g.ORPO.LossSum) || !near(l.Metric("log_odds"), odds) || !near(l.Metric("logps_chosen"), lc) {
		t.Errorf("ORPO: loss %.8g log_odds %.8g logps_chosen %.8g; PyTorch %.8g, %.8g, %.8g", sum, l.Metric("log_odds"), l.Metric("logps_chosen"), g.ORPO.LossSum, odds, lc)
	}
	grad("ORPO", leaf, l, g.ORPO.Grad)
	leaf.MustDrop()

	leaf, fwd = g.fixedLogits()
	l, err = (&ORPO{Pairs: pairs, Config: ORPOConfig{Beta: g.ORPO.Beta, NLLOnPrompt: true}, forward: fwd}).Loss(idx)
	if err != nil {
		t.Fatal(err)
	}
	var nll float64
	for _, v := range g.ORPOPrompt.NLL {
		nll += v
	}
	if sum := l.Sum.Float64Values(true)[0]; !near(sum, g.ORPOPrompt.LossSum) || !near(l.Metric("nll_loss"), nll) {
		t.Errorf("ORPO with the prompt: loss %.8g nll %.8g; PyTorch %.8g, %.8g", sum, l.Metric("nll_loss"), g.ORPOPrompt.LossSum, nll)
	}
	leaf.MustDrop()

	leaf, fwd = g.fixedLogits()
	refs := make([]RefLogProbs, g.P)
	for i := range refs {
		refs[i] = RefLogProbs{Chosen: g.DPO.Reference[i], Rejected: g.DPO.Reference[g.P+i]}
	}
	l, err = (&DPO{Pairs: pairs, Config: DPOConfig{Beta: g.DPO.Beta}, forward: fwd, Reference: refs}).Loss(idx)
	if err != nil {
		t.Fatal(err)
	}
	var pr float64
	for _, v := range g.DPO.LogpsRejected {
		pr += v
	}
	if sum := l.Sum.Float64Values()[0]; !near(sum, g.DPO.LossSum) || !near(l.Metric("logps_rejected"), pr) {
		t.Errorf("DPO: loss %.8g logps_rejected %.8g; PyTorch %.8g, %.8g", sum, l.Metric("logps_rejected"), g.DPO.LossSum, pr)
	}
	grad("DPO", leaf, l, g.DPO.Grad)
	leaf.MustDrop()
}
