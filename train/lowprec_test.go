package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// lowPrecision is a model's options in a 16-bit dtype on the CPU (a small
// helper, so a change of how ModelOptions names dtypes is one line).
func lowPrecision(dt gotch.DType) ModelOptions {
	return ModelOptions{DType: map[gotch.DType]string{gotch.BFloat16: "bf16", gotch.Half: "f16"}[dt]}
}

// halfMatmulOnCPU tells whether the linked libtorch multiplies f16
// matrices on the CPU (1.13 does not; 2.x does).
func halfMatmulOnCPU() bool {
	a := ts.MustOnes([]int64{2, 2}, gotch.Half, gotch.CPU)
	defer a.MustDrop()
	out, err := ts.Linear(a, a, ts.None)
	if err != nil {
		return false
	}
	out.MustDrop()
	return true
}

// unitRoundoff is 2^-(significand bits): bf16 keeps 8, f16 11.
func unitRoundoff(dt gotch.DType) float64 {
	if dt == gotch.BFloat16 {
		return math.Ldexp(1, -8)
	}
	return math.Ldexp(1, -11)
}

// Score and Generate work on a model held in bf16 (and f16 where libtorch
// has f16 CPU matmul), batched and left-padded, and agree with the fp32
// model within what 16-bit rounding allows:
//
//   - logits: every weight and activation is rounded to the dtype's unit
//     roundoff u (2^-8 for bf16); the two decoder layers' dozen rounded
//     operations each add an error of a few u relative to the activations'
//     scale, so the logits may differ by logitTol·u·max|logit| (logitTol =
//     16, four times the 3–4 u measured on the reference models in bf16);
//     a wrong mask, position or cache slot changes logits by O(1);
//   - scores: log-softmax moves a log-probability by at most twice the
//     largest logit error, so each scored token may differ by twice the
//     logit bound (the log-softmax itself runs in fp32);
//   - greedy tokens: equal to fp32's until a step where fp32's top two
//     logits are closer than twice the logit bound, where rounding may
//     flip them (the sequences differ from there on).
func TestLowPrecisionInference(t *testing.T) {
	const logitTol = 16
	ctx := context.Background()
	seqs := [][]int{{1, 5, 9, 14, 3, 22, 7, 1, 30, 31, 32, 33}, {1, 7, 8}, {1, 40, 41, 42, 43, 44}}
	dtypes := []gotch.DType{gotch.BFloat16}
	if halfMatmulOnCPU() {
		dtypes = append(dtypes, gotch.Half)
	} else {
		t.Log("f16 not tested: the linked libtorch has no f16 matmul on the CPU")
	}
	for _, dt := range dtypes {
		for _, name := range refModels {
			t.Run(dt.String()+"/"+name, func(t *testing.T) {
				f := loadRef(t, name)
				m, err := LoadModel(filepath.Join("testdata", "ref", name), lowPrecision(dt))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Drop()
				u := unitRoundoff(dt)
				// Logits of every prefix, teacher-forced.
				var worst float64
				var bound float64
				torchx.NoGrad(func() {
					for _, s := range seqs {
						for n := 1; n <= len(s); n++ {
							a, b := lastLogits(t, f, s[:n]), lastLogits(t, m, s[:n])
							var d, scale float64
							for j := range a {
								d = max(d, math.Abs(float64(a[j]-b[j])))
								scale = max(scale, math.Abs(float64(a[j])))
							}
							bound = max(bound, logitTol*u*scale)
							if d > logitTol*u*scale {
								t.Fatalf("prefix %v: %v logits differ from fp32 by %.3g (bound %.3g)", s[:n], dt, d, logitTol*u*scale)
							}
							worst = max(worst, d/(u*scale))
						}
					}
				})
				t.Logf("largest logit difference %.1f u·max|logit| (bound %d)", worst, logitTol)

				a, err := f.Score(ctx, seqs)
				if err != nil {
					t.Fatal(err)
				}
				b, err := m.Score(ctx, seqs)
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range seqs {
					if d := math.Abs(a[i] - b[i]); d > float64(len(s)-1)*2*bound {
						t.Errorf("sequence %d: %v score %g, fp32 %g: differ by %.3g over %d tokens (bound %.3g a token)", i, dt, b[i], a[i], d, len(s)-1, 2*bound)
					}
				}

				opts := GenerateOptions{MaxNewTokens: 12, StopIDs: []int{}}
				g32, err := f.Generate(ctx, seqs, opts)
				if err != nil {
					t.Fatal(err)
				}
				g16, err := m.Generate(ctx, seqs, opts)
				if err != nil {
					t.Fatal(err)
				}
				agreed := 0
				torchx.NoGrad(func() {
					for i, s := range seqs {
						for n, id := range g32[i] {
							if g16[i][n] == id {
								agreed++
								continue
							}
							l := lastLogits(t, f, append(append([]int{}, s...), g32[i][:n]...))
							if gap := topTwoGap(l); gap > 2*bound {
								t.Errorf("sequence %d, token %d: %v chose %d, fp32 %d with a margin of %.3g (flips allowed below %.3g)", i, n, dt, g16[i][n], id, gap, 2*bound)
							}
							break
						}
					}
				})
				if agreed < len(seqs)*opts.MaxNewTokens/2 {
					t.Errorf("only %d greedy tokens agree before the sequences part: %v vs fp32 %v", agreed, g16, g32)
				}
			})
		}
	}
}

// topTwoGap is the largest logit minus the second largest.
func topTwoGap(l []float32) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range l {
		switch v := float64(x); {
		case v > a:
			a, b = v, a
		case v > b:
			b = v
		}
	}
	return a - b
}
