package train

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// attnCase is one attention layout: heads, key heads, window, and the
// segments and padding of each row (nil: a plain causal row).
type attnCase struct {
	name          string
	H, KV, window int64
	seg, mask     [][]int64
}

var attnCases = []attnCase{
	{name: "causal", H: 4, KV: 4},
	{name: "gqa", H: 4, KV: 2},
	{name: "mqa-window", H: 4, KV: 1, window: 5},
	{name: "packed-padded", H: 4, KV: 2,
		seg:  [][]int64{{1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0}},
		mask: [][]int64{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}}},
	{name: "packed-window", H: 4, KV: 1, window: 3,
		seg:  [][]int64{{1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, {1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 0, 0}},
		mask: [][]int64{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}}},
	// Padding without segment ids: a padded query sees every earlier real
	// token (prepare's rule), so SDPA takes its block masks.
	{name: "padded-no-segments", H: 4, KV: 2,
		mask: [][]int64{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}}},
	// A segment id that comes back later in the row: its tokens see the
	// earlier run too (the rule prepare encodes), so no key range may skip it.
	{name: "segment-returns", H: 2, KV: 2,
		seg:  [][]int64{{1, 1, 1, 2, 2, 2, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3}},
		mask: [][]int64{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}},
}

const attnT, attnHD = 17, 8

// attnSetup builds q, k, v (fp32 leaves requiring grad), the incoming
// gradient, today's additive mask from Model.prepare and the blockwise
// mask for one case.
type attnSetup struct {
	q, k, v, dOut *ts.Tensor
	st            *fwdState
	mask          *attnMask
	scale         float64
}

func (s *attnSetup) drop() {
	for _, t := range []*ts.Tensor{s.q, s.k, s.v, s.dOut} {
		t.MustDrop()
	}
	s.st.drop()
	s.mask.drop()
}

func newAttnSetup(t *testing.T, c attnCase) *attnSetup {
	t.Helper()
	B := int64(max(1, len(c.mask)))
	cfg, err := ParseConfig(fmt.Appendf(nil, `{"architectures":["MistralForCausalLM"],"model_type":"mistral",
		"vocab_size":16,"hidden_size":%d,"intermediate_size":8,"num_hidden_layers":1,
		"num_attention_heads":%d,"num_key_value_heads":%d,"head_dim":%d,"sliding_window":%d,
		"max_position_embeddings":64,"rms_norm_eps":1e-5}`, c.H*attnHD, c.H, c.KV, attnHD, c.window))
	if err != nil {
		t.Fatal(err)
	}
	if c.window == 0 {
		cfg.SlidingWindow = 0
	}
	m, err := newSkeleton(cfg, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	var opts ForwardOptions
	if c.seg != nil {
		opts.SegmentIDs = int64Tensor(flat(c.seg), []int64{B, attnT}, gotch.CPU)
		defer opts.SegmentIDs.MustDrop()
	}
	if c.mask != nil {
		opts.AttentionMask = int64Tensor(flat(c.mask), []int64{B, attnT}, gotch.CPU)
		defer opts.AttentionMask.MustDrop()
	}
	st, err := m.prepare(B, attnT, opts)
	if err != nil {
		t.Fatal(err)
	}
	torchx.ManualSeed(7)
	leaf := func(h int64) *ts.Tensor {
		x := ts.MustRandn([]int64{B, h, attnT, attnHD}, gotch.Float, gotch.CPU)
		x.MustRequiresGrad_(true)
		return x
	}
	return &attnSetup{
		q: leaf(c.H), k: leaf(c.KV), v: leaf(c.KV),
		dOut:  ts.MustRandn([]int64{B, c.H, attnT, attnHD}, gotch.Float, gotch.CPU),
		st:    st,
		mask:  newAttnMask(st, int64(cfg.SlidingWindow)),
		scale: 1 / math.Sqrt(attnHD),
	}
}

func flat(rows [][]int64) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// explicitAttention is today's attention in layerForward: the full
// [B, KV, rep·T, S] scores plus prepare's additive mask.
func explicitAttention(q, k, v, mask *ts.Tensor, scale float64) *ts.Tensor {
	s := q.MustSize()
	B, H, T, hd := s[0], s[1], s[2], s[3]
	KV, S := k.MustSize()[1], k.MustSize()[2]
	rep := H / KV
	qs := q.MustMulScalar(ts.FloatScalar(scale), false).MustReshape([]int64{B, KV, rep * T, hd}, true)
	kt := k.MustTranspose(2, 3, false)
	scores := qs.MustMatmul(kt, true)
	kt.MustDrop()
	if mask != nil {
		scores = scores.MustView([]int64{B, KV, rep, T, S}, true).MustAdd(mask, true).MustView([]int64{B, KV, rep * T, S}, true)
	}
	p := scores.MustSoftmax(-1, gotch.Float, true)
	return p.MustMatmul(v, true).MustView([]int64{B, H, T, hd}, true)
}

// gradsOf runs backward from Σ out ∘ dOut and returns (and clears) the
// leaves' gradients.
func gradsOf(t *testing.T, out, dOut *ts.Tensor, leaves ...*ts.Tensor) [][]float32 {
	t.Helper()
	if err := backwardWith([]*ts.Tensor{out}, []*ts.Tensor{dOut}); err != nil {
		t.Fatal(err)
	}
	return leafGrads(leaves...)
}

// maxRelDiff is the largest |a − b| over the largest |b|, or over 1 when
// that is smaller: an absolute difference for values below 1, a relative
// one above, so a tolerance of 1e-6 sits a few fp32 roundings (ε ≈ 1.2e-7)
// above exact agreement whatever the size of the values. NaN counts as
// infinite.
func maxRelDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, scale float64
	for i := range a {
		x := math.Abs(float64(a[i] - b[i]))
		if math.IsNaN(x) {
			return math.Inf(1)
		}
		d = max(d, x)
		scale = max(scale, math.Abs(float64(b[i])))
	}
	return d / max(1, scale)
}

// TestBlockAttentionMatchesExplicit checks outputs and dQ, dK, dV of the
// blockwise paths — with autograd, and forward/backward without it —
// against today's explicit attention with autograd, for causal, GQA,
// sliding-window and packed, padded rows, at block sizes that do and do
// not divide T.
func TestBlockAttentionMatchesExplicit(t *testing.T) {
	const tol = 1e-6
	for _, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			s := newAttnSetup(t, c)
			defer s.drop()
			ref := explicitAttention(s.q, s.k, s.v, s.st.mask, s.scale)
			want := values(ref)
			wantG := gradsOf(t, ref, s.dOut, s.q, s.k, s.v)
			ref.MustDrop()
			for _, block := range []int64{1, 4, 5, 16, attnT, 64, 0} {
				out := blockAttention(s.q, s.k, s.v, s.mask, s.scale, block)
				if d := maxRelDiff(values(out), want); d > tol {
					t.Errorf("block %d: autograd path: max |Δout| = %g", block, d)
				}
				g := gradsOf(t, out, s.dOut, s.q, s.k, s.v)
				out.MustDrop()
				for i, name := range []string{"dQ", "dK", "dV"} {
					if d := maxRelDiff(g[i], wantG[i]); d > tol {
						t.Errorf("block %d: autograd path: max |Δ%s| = %g", block, name, d)
					}
				}

				o, lse := blockAttentionForward(s.q, s.k, s.v, s.mask, s.scale, block)
				if o.MustRequiresGrad() {
					t.Errorf("block %d: forward without autograd returned a tensor with a graph", block)
				}
				if d := maxRelDiff(values(o), want); d > tol {
					t.Errorf("block %d: no-grad forward: max |Δout| = %g", block, d)
				}
				dq, dk, dv := blockAttentionBackward(s.q, s.k, s.v, o, lse, s.dOut, s.mask, s.scale, block)
				for i, gt := range []*ts.Tensor{dq, dk, dv} {
					if d := maxRelDiff(values(gt), wantG[i]); d > tol {
						t.Errorf("block %d: manual backward: max |Δ%s| = %g", block, []string{"dQ", "dK", "dV"}[i], d)
					}
					gt.MustDrop()
				}
				o.MustDrop()
				lse.MustDrop()
			}
		})
	}
}

// TestAttnMaskKeyRange checks that the key span of a query block covers
// every key prepare's mask allows for it, so skipping keys loses nothing,
// and that it does skip: a causal block never looks past its last query.
func TestAttnMaskKeyRange(t *testing.T) {
	for _, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			s := newAttnSetup(t, c)
			defer s.drop()
			var allowed []float32
			B := s.st.batch
			if s.st.mask != nil {
				allowed = values(s.st.mask) // [B|1, 1, 1, T, S], 0 or −∞
			}
			rows := int64(len(allowed)) / (attnT * attnT)
			for _, block := range []int64{1, 3, 8} {
				for t0 := int64(0); t0 < attnT; t0 += block {
					t1 := min(attnT, t0+block)
					lo, hi := s.mask.keyRange(t0, t1)
					if hi != t1 {
						t.Errorf("block [%d, %d): keys end at %d; want %d", t0, t1, hi, t1)
					}
					for b := range B {
						r := min(b, rows-1)
						for i := t0; i < t1; i++ {
							for j := range int64(attnT) {
								ok := allowed[(r*attnT+i)*attnT+j] == 0
								if ok && (j < lo || j >= hi) {
									t.Errorf("row %d query %d: key %d is allowed but outside the block's span [%d, %d)", b, i, j, lo, hi)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestSDPAMatchesExplicit checks the SDPA path (output and gradients)
// against the explicit blockwise path where the linked libtorch has
// scaled_dot_product_attention.
func TestSDPAMatchesExplicit(t *testing.T) {
	if !sdpaAvailable() {
		t.Skipf("the linked libtorch has no scaled_dot_product_attention (1.13 stubs it): %v", sdpaErr)
	}
	const tol = 1e-6
	for _, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			s := newAttnSetup(t, c)
			defer s.drop()
			ref := blockAttention(s.q, s.k, s.v, s.mask, s.scale, 0)
			want := values(ref)
			wantG := gradsOf(t, ref, s.dOut, s.q, s.k, s.v)
			ref.MustDrop()
			for _, block := range []int64{1, 5, 0} {
				out, err := sdpaAttention(s.q, s.k, s.v, s.mask, s.scale, block)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxRelDiff(values(out), want); d > tol {
					t.Errorf("block %d: max |Δout| = %g", block, d)
				}
				g := gradsOf(t, out, s.dOut, s.q, s.k, s.v)
				out.MustDrop()
				for i, name := range []string{"dQ", "dK", "dV"} {
					if d := maxRelDiff(g[i], wantG[i]); d > tol {
						t.Errorf("block %d: max |Δ%s| = %g", block, name, d)
					}
				}
			}
		})
	}
}

// TestSDPAProbe checks the availability probe against what the build
// says: on a libtorch without SDPA the probe must have seen setup's stub
// error, not another failure.
func TestSDPAProbe(t *testing.T) {
	if sdpaAvailable() {
		return
	}
	if sdpaErr == nil || !strings.Contains(sdpaErr.Error(), sdpaUnavailable) {
		t.Fatalf("SDPA probe failed for another reason: %v", sdpaErr)
	}
}

// TestAttnMaskSegments checks the split SDPA uses for packed rows: where
// the mask allows it, causal attention within each segment plus padding
// that sees only itself (and the window, applied inside segments) is
// exactly prepare's mask; a segment id that returns later in a row is not
// split.
func TestAttnMaskSegments(t *testing.T) {
	wantOK := map[string]bool{"causal": false, "gqa": false, "mqa-window": false,
		"packed-padded": true, "packed-window": true, "segment-returns": false, "padded-no-segments": false}
	for _, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			s := newAttnSetup(t, c)
			defer s.drop()
			rows, ok := s.mask.segments()
			if c.mask == nil {
				// Plain causal rows take the single is_causal call.
				if !s.mask.causalOnly() && c.window == 0 {
					t.Error("plain causal row not recognised as causal only")
				}
				return
			}
			if ok != wantOK[c.name] {
				t.Fatalf("segments ok = %v; want %v", ok, wantOK[c.name])
			}
			if !ok {
				return
			}
			allowed := values(s.st.mask) // [B, 1, 1, T, T]: 0 or −∞
			for b, row := range rows {
				covered := int64(0)
				for _, sp := range row {
					if sp.a != covered {
						t.Fatalf("row %d: span %v does not start at %d", b, sp, covered)
					}
					covered = sp.e
				}
				if covered != attnT {
					t.Fatalf("row %d: spans end at %d; want %d", b, covered, attnT)
				}
				for i := range int64(attnT) {
					for j := range int64(attnT) {
						var want bool
						for _, sp := range row {
							in := i >= sp.a && i < sp.e && j >= sp.a && j <= i
							if sp.pad {
								in = in && i == j
							}
							if c.window > 0 {
								in = in && i-j < c.window
							}
							want = want || in
						}
						got := allowed[(int64(b)*attnT+i)*attnT+j] == 0
						if got != want {
							t.Errorf("row %d query %d key %d: prepare allows %v, the split %v", b, i, j, got, want)
						}
					}
				}
			}
		})
	}
}

// TestBlockAttentionBF16 runs the blockwise paths on bf16 inputs (the casts
// the fp32 tests do not reach) and checks outputs and gradients against
// fp32 explicit attention within bf16's precision.
func TestBlockAttentionBF16(t *testing.T) {
	s := newAttnSetup(t, attnCases[3]) // packed, padded, GQA
	defer s.drop()
	ref := explicitAttention(s.q, s.k, s.v, s.st.mask, s.scale)
	want := values(ref)
	wantG := gradsOf(t, ref, s.dOut, s.q, s.k, s.v)
	ref.MustDrop()
	bf := func(x *ts.Tensor) *ts.Tensor { return x.MustDetach(false).MustTotype(gotch.BFloat16, true) }
	q, k, v, dOut := bf(s.q), bf(s.k), bf(s.v), bf(s.dOut)
	defer func() {
		for _, x := range []*ts.Tensor{q, k, v, dOut} {
			x.MustDrop()
		}
	}()
	const tol = 3e-2
	o, lse := blockAttentionForward(q, k, v, s.mask, s.scale, 5)
	defer o.MustDrop()
	defer lse.MustDrop()
	if o.DType() != gotch.BFloat16 || lse.DType() != gotch.Float {
		t.Errorf("dtypes: out %v, lse %v; want bfloat16, float", o.DType(), lse.DType())
	}
	if d := maxRelDiff(values(o), want); d > tol {
		t.Errorf("out: difference %g from fp32", d)
	}
	dq, dk, dv := blockAttentionBackward(q, k, v, o, lse, dOut, s.mask, s.scale, 5)
	for i, g := range []*ts.Tensor{dq, dk, dv} {
		if g.DType() != gotch.BFloat16 {
			t.Errorf("gradient %d dtype %v; want bfloat16", i, g.DType())
		}
		if d := maxRelDiff(values(g), wantG[i]); d > tol {
			t.Errorf("gradient %d: difference %g from fp32", i, d)
		}
		g.MustDrop()
	}
	out := blockAttention(q, k, v, s.mask, s.scale, 5)
	defer out.MustDrop()
	if d := maxRelDiff(values(out), want); d > tol {
		t.Errorf("autograd path out: difference %g from fp32", d)
	}
}

// TestSDPABF16 checks the SDPA path on bf16 inputs against fp32 explicit
// attention within bf16's precision, where SDPA is available.
func TestSDPABF16(t *testing.T) {
	if !sdpaAvailable() {
		t.Skipf("the linked libtorch has no scaled_dot_product_attention (1.13 stubs it): %v", sdpaErr)
	}
	for _, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			s := newAttnSetup(t, c)
			defer s.drop()
			ref := explicitAttention(s.q, s.k, s.v, s.st.mask, s.scale)
			want := values(ref)
			ref.MustDrop()
			bf := func(x *ts.Tensor) *ts.Tensor { return x.MustDetach(false).MustTotype(gotch.BFloat16, true) }
			q, k, v := bf(s.q), bf(s.k), bf(s.v)
			defer func() {
				for _, x := range []*ts.Tensor{q, k, v} {
					x.MustDrop()
				}
			}()
			out, err := sdpaAttention(q, k, v, s.mask, s.scale, 5)
			if err != nil {
				t.Fatal(err)
			}
			defer out.MustDrop()
			if out.DType() != gotch.BFloat16 {
				t.Errorf("out dtype %v; want bfloat16", out.DType())
			}
			if d := maxRelDiff(values(out), want); d > 3e-2 {
				t.Errorf("out: difference %g from fp32", d)
			}
		})
	}
}
