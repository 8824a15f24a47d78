package train

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

var refModels = []string{"llama", "mistral", "mixtral"}

type golden struct {
	set *safetensors.Set
	t   *testing.T
}

func openGolden(t *testing.T, name string) *golden {
	t.Helper()
	f, err := safetensors.OpenFile(filepath.Join("testdata", "ref", name, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &golden{safetensors.NewSet(f), t}
}

func (g *golden) ids(name string) *ts.Tensor {
	g.t.Helper()
	info, ok := g.set.Info(name)
	if !ok {
		g.t.Fatalf("golden has no %s", name)
	}
	raw, err := g.set.ReadRaw(name, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	return ts.MustOfDataSize(raw, info.Shape, gotch.Int64)
}

func (g *golden) floats(name string) []float32 {
	g.t.Helper()
	v, err := g.set.ReadFloat32(name)
	if err != nil {
		g.t.Fatal(err)
	}
	return v
}

func values(t *ts.Tensor) []float32 {
	c := t.MustDetach(false).MustTotype(gotch.Float, true).MustContiguous(true)
	defer c.MustDrop()
	return c.Vals().([]float32)
}

// maxDiff is the largest |got - want| over positions where keep (per row of
// width V) is true; keep nil means all.
func maxDiff(got, want []float32, keep []int64, V int) float64 {
	var d float64
	for i := range got {
		if keep != nil && keep[i/V] == 0 {
			continue
		}
		d = max(d, math.Abs(float64(got[i]-want[i])))
	}
	return d
}

func loadRef(t *testing.T, name string) *Model {
	t.Helper()
	m, err := LoadModel(filepath.Join("testdata", "ref", name), ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	return m
}

// TestLogitsMatchReference compares logits (and Mixtral's aux loss) with
// goldens from an independent PyTorch implementation. Regenerate them with
// /usr/bin/python3 train/testdata/ref/gen.py when the test models change.
func TestLogitsMatchReference(t *testing.T) {
	const atol = 1e-4
	for _, name := range refModels {
		t.Run(name, func(t *testing.T) {
			m := loadRef(t, name)
			g := openGolden(t, name)
			V := m.Config.VocabSize
			torchx.NoGrad(func() {
				in := g.ids("plain.input_ids")
				out, err := m.Forward(in, ForwardOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(values(out.Logits), g.floats("plain.logits"), nil, V); d > atol {
					t.Errorf("plain batch: max |Δlogit| = %g", d)
				}
				if m.Config.IsMoE() {
					aux := values(out.AuxLoss)[0]
					if want := g.floats("plain.aux_loss")[0]; math.Abs(float64(aux-want)) > 1e-5 {
						t.Errorf("plain aux loss = %g; reference %g", aux, want)
					}
				} else if out.AuxLoss != nil {
					t.Error("dense model returned an aux loss")
				}
				out.Drop()

				in = g.ids("padded.input_ids")
				mask := g.ids("padded.attention_mask")
				out, err = m.Forward(in, ForwardOptions{AttentionMask: mask})
				if err != nil {
					t.Fatal(err)
				}
				keep := mask.Int64Values()
				if d := maxDiff(values(out.Logits), g.floats("padded.logits"), keep, V); d > atol {
					t.Errorf("padded batch: max |Δlogit| = %g", d)
				}
				if m.Config.IsMoE() {
					aux := values(out.AuxLoss)[0]
					if want := g.floats("padded.aux_loss")[0]; math.Abs(float64(aux-want)) > 1e-5 {
						t.Errorf("padded aux loss = %g; reference %g", aux, want)
					}
				}
				out.Drop()

				in = g.ids("packed.input_ids")
				seg := g.ids("packed.segment_ids")
				pos := g.ids("packed.position_ids")
				for _, o := range []ForwardOptions{{SegmentIDs: seg}, {SegmentIDs: seg, PositionIDs: pos}} {
					out, err = m.Forward(in, o)
					if err != nil {
						t.Fatal(err)
					}
					if d := maxDiff(values(out.Logits), g.floats("packed.logits"), nil, V); d > atol {
						t.Errorf("packed row (explicit positions %v): max |Δlogit| = %g", o.PositionIDs != nil, d)
					}
					out.Drop()
				}
			})
		})
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	m := loadRef(t, "llama")
	bad := []struct {
		name string
		in   *ts.Tensor
		opts ForwardOptions
	}{
		{"1-D input", ts.MustOfSlice([]int64{1, 2, 3}), ForwardOptions{}},
		{"float input", ts.MustOfSlice([]float32{1, 2}).MustView([]int64{1, 2}, true), ForwardOptions{}},
		{"id past vocab", ts.MustOfSlice([]int64{1, 96}).MustView([]int64{1, 2}, true), ForwardOptions{}},
		{"negative id", ts.MustOfSlice([]int64{-1, 5}).MustView([]int64{1, 2}, true), ForwardOptions{}},
		{"mask shape", ts.MustOfSlice([]int64{1, 5}).MustView([]int64{1, 2}, true), ForwardOptions{AttentionMask: ts.MustOfSlice([]int64{1, 1, 1})}},
	}
	for _, b := range bad {
		if _, err := m.Forward(b.in, b.opts); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
}

// The KV cache must give the same logits as recomputing the whole
// sequence, for left-padded batches too.
func TestKVCacheEqualsFullRecomputation(t *testing.T) {
	for _, name := range refModels {
		t.Run(name, func(t *testing.T) {
			m := loadRef(t, name)
			prompts := [][]int{{5, 9, 14, 3, 22}, {7, 8}}
			got, err := m.Generate(context.Background(), prompts, GenerateOptions{MaxNewTokens: 6, StopIDs: []int{}})
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range prompts {
				if len(got[i]) != 6 {
					t.Fatalf("prompt %d: %d tokens generated; want 6", i, len(got[i]))
				}
				// Greedy decoding by full recomputation, one row at a time.
				seq := append([]int{}, p...)
				torchx.NoGrad(func() {
					for range 6 {
						ids := make([]int64, len(seq))
						for j, v := range seq {
							ids[j] = int64(v)
						}
						in := ts.MustOfSlice(ids).MustView([]int64{1, int64(len(ids))}, true)
						out, err := m.Forward(in, ForwardOptions{LastOnly: true})
						if err != nil {
							t.Fatal(err)
						}
						seq = append(seq, int(out.Logits.MustArgmax([]int64{-1}, false, false).Int64Values(true)[0]))
						out.Drop()
						in.MustDrop()
					}
				})
				if fmt.Sprint(seq[len(p):]) != fmt.Sprint(got[i]) {
					t.Errorf("prompt %d: cached generation %v; full recomputation %v", i, got[i], seq[len(p):])
				}
			}
		})
	}
}

func TestGenerateStopsAndSamples(t *testing.T) {
	m := loadRef(t, "llama")
	ctx := context.Background()
	greedy, err := m.Generate(ctx, [][]int{{5, 9, 14}}, GenerateOptions{MaxNewTokens: 5, StopIDs: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	stopAt := greedy[0][2]
	cut, err := m.Generate(ctx, [][]int{{5, 9, 14}}, GenerateOptions{MaxNewTokens: 5, StopIDs: []int{stopAt}})
	if err != nil {
		t.Fatal(err)
	}
	want := greedy[0][:2]
	for j, v := range greedy[0][:2] {
		if v == stopAt {
			want = greedy[0][:j]
			break
		}
	}
	if fmt.Sprint(cut[0]) != fmt.Sprint(want) {
		t.Errorf("stop at %d: got %v; want %v (greedy %v)", stopAt, cut[0], want, greedy[0])
	}
	opts := GenerateOptions{MaxNewTokens: 8, Temperature: 1.5, TopP: 0.95, Seed: 3, StopIDs: []int{}}
	a, err := m.Generate(ctx, [][]int{{5, 9, 14}, {4}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Generate(ctx, [][]int{{5, 9, 14}, {4}}, opts)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different samples: %v vs %v", a, b)
	}
	opts.Seed = 4
	c, _ := m.Generate(ctx, [][]int{{5, 9, 14}, {4}}, opts)
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 3 and 4 sampled the same %v", a)
	}
	if _, err := m.Generate(ctx, [][]int{{}}, GenerateOptions{}); err == nil {
		t.Error("empty prompt accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Generate(cctx, [][]int{{5}}, GenerateOptions{}); err == nil {
		t.Error("cancelled context ignored")
	}
}

// Score must equal the log-probabilities summed by hand from full logits.
func TestScoreMatchesLogits(t *testing.T) {
	m := loadRef(t, "mistral")
	seqs := [][]int{{1, 5, 9, 14, 3}, {1, 7}, {4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	got, err := m.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		var want float64
		torchx.NoGrad(func() {
			ids := make([]int64, len(s))
			for j, v := range s {
				ids[j] = int64(v)
			}
			in := ts.MustOfSlice(ids).MustView([]int64{1, int64(len(s))}, true)
			out, _ := m.Forward(in, ForwardOptions{})
			lp := out.Logits.MustLogSoftmax(-1, gotch.Double, false)
			v := lp.Float64Values(true)
			V := m.Config.VocabSize
			for j := 1; j < len(s); j++ {
				want += v[(j-1)*V+s[j]]
			}
			out.Drop()
		})
		if math.Abs(got[i]-want) > 1e-4 {
			t.Errorf("sequence %d: Score %g; by hand %g", i, got[i], want)
		}
	}
	ll, err := m.LogLikelihoods(context.Background(), [][]int{{1, 5}}, [][]int{{9, 14}})
	if err != nil || ll[0].Tokens != 2 {
		t.Fatalf("LogLikelihoods = %+v, %v", ll, err)
	}
	if _, err := m.LogLikelihoods(context.Background(), [][]int{{1}}, [][]int{{}}); err == nil {
		t.Error("empty continuation accepted")
	}
}

// Every tensor Forward, Generate and Score create must be freed: libtorch
// memory is invisible to Go's garbage collector.
func TestNoTensorLeaks(t *testing.T) {
	for _, name := range refModels {
		m := loadRef(t, name)
		g := openGolden(t, name)
		in, mask := g.ids("padded.input_ids"), g.ids("padded.attention_mask")
		pin, seg := g.ids("packed.input_ids"), g.ids("packed.segment_ids")
		run := func() {
			torchx.NoGrad(func() {
				for _, c := range []struct {
					in   *ts.Tensor
					opts ForwardOptions
				}{{in, ForwardOptions{}}, {in, ForwardOptions{AttentionMask: mask}}, {pin, ForwardOptions{SegmentIDs: seg, LastOnly: true}}} {
					out, err := m.Forward(c.in, c.opts)
					if err != nil {
						t.Fatal(err)
					}
					out.Drop()
				}
			})
			if _, err := m.Generate(context.Background(), [][]int{{3, 4, 5}, {6}}, GenerateOptions{MaxNewTokens: 3, Temperature: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Score(context.Background(), [][]int{{3, 4, 5}, {6, 7}}); err != nil {
				t.Fatal(err)
			}
		}
		run() // first call may create lasting state
		// No collection meanwhile: a finalizer freeing a leaked tensor
		// would hide the leak.
		gc := debug.SetGCPercent(-1)
		before := maps.Clone(ts.ExistingTensors)
		run()
		var leaked []string
		for n := range ts.ExistingTensors {
			if _, ok := before[n]; !ok {
				leaked = append(leaked, n)
			}
		}
		after := len(ts.ExistingTensors)
		debug.SetGCPercent(gc)
		if len(leaked) > 0 {
			t.Errorf("%s: leaked %v", name, leaked)
		}
		if after != len(before) {
			t.Errorf("%s: %d tensors alive before, %d after", name, len(before), after)
		}
	}
}

// A model held in bfloat16 follows the fp32 one within bf16 precision.
func TestBF16ModelFollowsFP32(t *testing.T) {
	for _, name := range []string{"llama", "mixtral"} {
		m32 := loadRef(t, name)
		m16, err := LoadModel(filepath.Join("testdata", "ref", name), ModelOptions{DType: "bf16"})
		if err != nil {
			t.Fatal(err)
		}
		defer m16.Drop()
		if p := m16.NamedParameters()[0].T; p.DType() != gotch.BFloat16 {
			t.Fatalf("%s: parameters are %v", name, p.DType())
		}
		ids := []int64{3, 9, 4, 11, 6, 20, 5}
		a, b := forwardValues(t, m32, ids), forwardValues(t, m16, ids)
		var scale float64
		for _, v := range a {
			scale = max(scale, math.Abs(float64(v)))
		}
		if d := maxDiff(a, b, nil, 1); d > 0.1*scale {
			t.Errorf("%s: bf16 logits differ by %g (logit scale %g)", name, d, scale)
		}
	}
}

// Padding and packing put -inf in the attention scores; the gradients must
// stay finite (a fully masked row would make them NaN).
func TestGradientsFiniteWithPaddingAndPacking(t *testing.T) {
	for _, name := range refModels {
		m := loadRef(t, name)
		g := openGolden(t, name)
		for _, c := range []struct {
			in   *ts.Tensor
			opts ForwardOptions
		}{
			{g.ids("padded.input_ids"), ForwardOptions{AttentionMask: g.ids("padded.attention_mask")}},
			{g.ids("packed.input_ids"), ForwardOptions{SegmentIDs: g.ids("packed.segment_ids")}},
		} {
			out, err := m.Forward(c.in, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			loss := out.Logits.MustLogSoftmax(-1, gotch.Float, false).MustMean(gotch.Float, true)
			if out.AuxLoss != nil {
				loss = loss.MustAdd(out.AuxLoss, true)
			}
			loss.MustBackward()
			loss.MustDrop()
			out.Drop()
			for _, p := range m.NamedParameters() {
				gr := p.T.MustGrad(false)
				for _, v := range values(gr) {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("%s: gradient of %s is %g", name, p.Name, v)
					}
				}
				gr.MustZero_()
				gr.MustDrop()
			}
		}
	}
}
