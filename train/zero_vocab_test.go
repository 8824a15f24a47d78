package train

import (
	"math"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestZeroVocabSharding: stage 3's embedding (from the compact table of
// used rows) and head (walked in 7-row chunks, a running log-sum-exp, the
// weight gradient reduced chunk by chunk into the pieces' sums) give the
// whole embedding's lookup and Head's log-probabilities and gradients; the
// chunk rows never reach past the largest decoder layer's element count.
func TestZeroVocabSharding(t *testing.T) {
	torchx.SetGradEnabled(true)
	m, _ := zeroTinyLlama(t, true, false)
	defer m.Drop()
	var embed, head *ts.Tensor
	torchx.NoGrad(func() {
		embed = m.embed.MustDetach(false).MustContiguous(true).MustMulScalar(ts.FloatScalar(1), true)
		head = m.lmHead.MustDetach(false).MustMulScalar(ts.FloatScalar(1), true)
	})
	defer embed.MustDrop()
	defer head.MustDrop()
	z, err := newZeroOptimizer(m.NamedParameters(), AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, 3, nil, false, m)
	if err != nil {
		t.Fatal(err)
	}
	if z.embedP < 0 || z.headP < 0 {
		t.Fatal("embedding or head not sharded by vocabulary")
	}
	if z.vocabRows <= 0 || z.vocabRows*16 > int64(2*16+2*256+2*128+3*384) {
		t.Fatalf("head chunk of %d rows: more elements than the largest layer", z.vocabRows)
	}
	z.vocabRows = 7 // 61 rows: 9 chunks, the last of 5
	ids := ts.MustOfSlice([]int64{3, 60, 3, 0, 17, 59, 8, 8}).MustView([]int64{2, 4}, true)
	defer ids.MustDrop()
	x, err := z.embedForward(ids)
	if err != nil {
		t.Fatal(err)
	}
	want := ts.MustEmbedding(embed, ids, -1, false, false)
	if d := tensorDiff(x, want); d != 0 {
		t.Errorf("embedding: max |Δ| = %g against the whole table's lookup", d)
	}
	x.MustDrop()
	want.MustDrop()

	hidden := ts.MustRandn([]int64{2, 4, 16}, gotch.Float, gotch.CPU)
	defer hidden.MustDrop()
	targets := ts.MustOfSlice([]int64{5, -100, 60, 0, 13, 14, 6, 7}).MustView([]int64{2, 4}, true)
	defer targets.MustDrop()
	ref := &Head{W: head, WeightGrad: true}
	wantLp, err := ref.TokenLogProbs(hidden, targets)
	if err != nil {
		t.Fatal(err)
	}
	defer wantLp.MustDrop()
	lp, lse, err := z.headForward(hidden, targets)
	if err != nil {
		t.Fatal(err)
	}
	defer lp.MustDrop()
	defer lse.MustDrop()
	if d := tensorDiff(lp, wantLp); d > 1e-5 {
		t.Errorf("head log-probs: max |Δ| = %g, want ≤ 1e-5", d)
	}
	dlp := ts.MustRandn([]int64{2, 4}, gotch.Float, gotch.CPU)
	defer dlp.MustDrop()
	wantG, err := ref.TokenLogProbsBackward(hidden, targets, dlp)
	if err != nil {
		t.Fatal(err)
	}
	defer wantG.Drop()
	dh, err := z.headBackward(hidden, targets, dlp, lse)
	if err != nil {
		t.Fatal(err)
	}
	defer dh.MustDrop()
	if d := tensorDiff(dh, wantG.Hidden); d > 1e-5 {
		t.Errorf("head: hidden gradient max |Δ| = %g, want ≤ 1e-5", d)
	}
	// One rank: its single piece of lm_head is the whole weight.
	for k, pc := range z.pieces[0] {
		if pc.param == z.headP {
			g := z.gacc[k].MustView(wantG.Weight.MustSize(), false)
			if d := tensorDiff(g, wantG.Weight); d > 1e-5 {
				t.Errorf("head: weight gradient max |Δ| = %g, want ≤ 1e-5", d)
			}
			g.MustDrop()
		}
	}
	if !z.has[z.headP] {
		t.Error("the head's gradient is not flagged")
	}
}

func tensorDiff(a, b *ts.Tensor) float64 {
	d := a.MustSub(b, false).MustAbs(true).MustMax(true)
	defer d.MustDrop()
	v := d.Float64Values()[0]
	if math.IsNaN(v) {
		return math.Inf(1)
	}
	return v
}

// TestLoadModelSharded: a rank's sharded load holds no parameter whole,
// only its pieces (half of each tensor's elements, as read from the file's
// byte ranges), and a trainer that would not take them as they are
// refuses it.
func TestLoadModelSharded(t *testing.T) {
	torchx.SetGradEnabled(true)
	m, _ := zeroTinyLlama(t, true, false)
	dir := t.TempDir()
	if err := m.Save(dir, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	whole := map[string][]float64{}
	for _, p := range m.NamedParameters() {
		whole[p.Name] = p.T.Float64Values()
	}
	m.Drop()
	for rank := range 2 {
		s, err := LoadModelSharded(dir, ModelOptions{GradientCheckpointing: true}, rank, 2)
		if err != nil {
			t.Fatal(err)
		}
		pl := preloaded(s)
		for _, p := range s.NamedParameters() {
			if p.T.Numel() != 0 {
				t.Errorf("rank %d: %s holds %d elements, want none", rank, p.Name, p.T.Numel())
			}
			w := whole[p.Name]
			pc := zeroPartitionPerParam([]int64{int64(len(w))}, 2)[rank][0]
			got := pl.piece[p.Name].Float64Values()
			for i, v := range got {
				if v != w[pc.start+int64(i)] {
					t.Fatalf("rank %d: %s piece element %d = %g, want %g", rank, p.Name, i, v, w[pc.start+int64(i)])
				}
			}
			if int64(len(got)) != pc.n {
				t.Errorf("rank %d: %s piece of %d elements, want %d", rank, p.Name, len(got), pc.n)
			}
		}
		for _, stage := range []int{2, 3} {
			_, err := newZeroOptimizer(s.NamedParameters(), AdamWConfig{}, stage, nil, false, s)
			want := map[int]string{2: "ZeroStage 3", 3: "rank 0 of 1"}[stage]
			if stage == 3 && rank == 0 {
				want = "loaded sharded as rank 0 of 2"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("rank %d, stage %d in one process: %v, want an error saying %q", rank, stage, err, want)
			}
		}
		pl.drop()
	}
}
