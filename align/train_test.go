package align

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func bigramOf(vals []float64, V int, grad bool) *bigram {
	w := ts.MustOfSlice(vals).MustView([]int64{int64(V), int64(V)}, true)
	if grad {
		w = w.MustSetRequiresGrad(true, true)
	}
	return &bigram{w: w}
}

// TestGradientMatchesFiniteDifferences: in fp64 the autograd gradient of
// the summed ORPO and DPO losses with respect to every logit of a bigram
// model equals the central finite difference.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	const V = 5
	base := newBigram(V, gotch.Double, 0.7).vals()
	vals := make([]float64, 0, V*V)
	for _, r := range base {
		vals = append(vals, r...)
	}
	pairs := fixedPairs()
	refs := []RefLogProbs{{-6, -5}, {-2, -9}, {-4, -1}}
	idx := []int{0, 1, 2}
	objectives := map[string]func(fwd forwardFunc) train.Objective{
		"orpo": func(fwd forwardFunc) train.Objective {
			return &ORPO{Pairs: pairs, Config: ORPOConfig{Beta: 0.5}, forward: fwd}
		},
		"orpo-nll-on-prompt": func(fwd forwardFunc) train.Objective {
			return &ORPO{Pairs: pairs, Config: ORPOConfig{Beta: 0.5, NLLOnPrompt: true}, forward: fwd}
		},
		"dpo": func(fwd forwardFunc) train.Objective {
			return &DPO{Pairs: pairs, Config: DPOConfig{Beta: 0.3}, forward: fwd, Reference: refs}
		},
	}
	lossAt := func(mk func(forwardFunc) train.Objective, v []float64) float64 {
		bg := bigramOf(v, V, false)
		defer bg.w.MustDrop()
		var out float64
		torchx.NoGrad(func() {
			l, err := mk(bg.forward).Loss(idx)
			if err != nil {
				t.Fatal(err)
			}
			out = l.Sum.Float64Values(true)[0]
		})
		return out
	}
	torchx.SetGradEnabled(true)
	for name, mk := range objectives {
		bg := bigramOf(append([]float64(nil), vals...), V, true)
		l, err := mk(bg.forward).Loss(idx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Sum.Backward(); err != nil {
			t.Fatal(err)
		}
		l.Sum.MustDrop()
		g := bg.w.MustGrad(false)
		grad := g.Float64Values(true)
		bg.w.MustDrop()
		const h = 1e-6
		nonzero := 0
		for i := range vals {
			up, down := append([]float64(nil), vals...), append([]float64(nil), vals...)
			up[i] += h
			down[i] -= h
			fd := (lossAt(mk, up) - lossAt(mk, down)) / (2 * h)
			if math.Abs(fd-grad[i]) > 1e-7+1e-6*math.Abs(fd) {
				t.Errorf("%s: ∂loss/∂w[%d] autograd %.10g, finite difference %.10g", name, i, grad[i], fd)
			}
			if math.Abs(fd) > 1e-4 {
				nonzero++
			}
		}
		if nonzero < 10 {
			t.Errorf("%s: only %d gradients are non-zero; the check checks little", name, nonzero)
		}
	}
}

func tinyLlama(t testing.TB, vocab int, seed int64) *train.Model {
	t.Helper()
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama",
		"vocab_size":` + strconv.Itoa(vocab) + `,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
		"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"rms_norm_eps":1e-5}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	return m
}

// syntheticPairs: after a two-token prompt the chosen answer counts up
// from the prompt's last token, the rejected one jumps by 5 — a rule a tiny
// model learns in a few dozen steps.
func syntheticPairs(n, vocab int) []tokenize.PreferenceExample {
	out := make([]tokenize.PreferenceExample, n)
	for i := range out {
		a := (i * 3) % vocab
		prompt := []int{(i * 7) % vocab, a}
		var c, r []int
		for j := 1; j <= 3+i%3; j++ {
			c = append(c, (a+j)%vocab)
			r = append(r, (a+5*j)%vocab)
		}
		out[i] = pair(prompt, c, r)
	}
	return out
}

func trainerConfig(dir string) train.TrainerConfig {
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir = dir
	cfg.LR = 3e-3
	cfg.BatchSize = 4
	cfg.WarmupRatio = 0.1
	return cfg
}

// TestRewardAccuracyRises: ORPO on a full tiny Llama and DPO on LoRA
// adapters (reference: the adapters switched off) both learn to rank the
// synthetic pairs, which the untrained model ranks no better than chance.
func TestRewardAccuracyRises(t *testing.T) {
	const V = 16
	pairs := syntheticPairs(48, V)
	for _, tc := range []string{"orpo", "dpo-lora"} {
		t.Run(tc, func(t *testing.T) {
			m := tinyLlama(t, V, 5)
			var obj train.Objective
			cfg := trainerConfig(t.TempDir())
			cfg.Epochs = 6
			switch tc {
			case "orpo":
				o, err := NewORPO(m, pairs, 0, ORPOConfig{})
				if err != nil {
					t.Fatal(err)
				}
				obj = o
			case "dpo-lora":
				if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj", "up_proj", "down_proj"}}); err != nil {
					t.Fatal(err)
				}
				o, err := NewDPO(m, pairs, 0, DPOConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if err := o.ComputeReference(context.Background(), nil, 8); err != nil {
					t.Fatal(err)
				}
				obj = o
				cfg.LR = 1e-2
			}
			_, before, err := Evaluate(context.Background(), obj, 8)
			if err != nil {
				t.Fatal(err)
			}
			var first train.StepRecord
			cfg.OnStep = func(r train.StepRecord) {
				if r.Step == 1 {
					first = r
				}
			}
			tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tc == "dpo-lora" && math.Abs(first.Loss-math.Ln2) > 1e-5 {
				// B starts at zero: policy and reference agree before the first update.
				t.Errorf("first DPO loss %.7f, want ln 2 = %.7f", first.Loss, math.Ln2)
			}
			for _, k := range []string{"rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy", "logps_chosen", "logps_rejected"} {
				if _, ok := first.Extra[k]; !ok {
					t.Errorf("step record lacks %s: %v", k, first.Extra)
				}
			}
			_, after, err := Evaluate(context.Background(), obj, 8)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("reward accuracy %.3f → %.3f, margin %.3f → %.3f", before["reward_accuracy"], after["reward_accuracy"], before["reward_margin"], after["reward_margin"])
			if before["reward_accuracy"] > 0.75 {
				t.Errorf("untrained accuracy %.3f: the task is too easy to show learning", before["reward_accuracy"])
			}
			if after["reward_accuracy"] < 0.9 || !(after["reward_margin"] > before["reward_margin"]) {
				t.Errorf("after training: reward accuracy %.3f (want ≥ 0.9), margin %.3f → %.3f", after["reward_accuracy"], before["reward_margin"], after["reward_margin"])
			}
		})
	}
}

func paramValues(m *train.Model) [][]float64 {
	var out [][]float64
	for _, p := range m.NamedParameters() {
		out = append(out, p.T.Float64Values())
	}
	return out
}

// TestResumeReproduces: an ORPO run, and a DPO run on LoRA adapters,
// cancelled after step 3 and resumed from the checkpoint end with exactly
// the weights of the uninterrupted run.
func TestResumeReproduces(t *testing.T) {
	const V = 16
	pairs := syntheticPairs(16, V)
	for _, kind := range []string{"orpo", "dpo-lora"} {
		firstStep := 0
		run := func(dir string, stopAt int, resume bool) (*train.Model, error) {
			firstStep = 0
			m := tinyLlama(t, V, 9)
			var obj train.Objective
			if kind == "orpo" {
				o, err := NewORPO(m, pairs, 0, ORPOConfig{Beta: 0.2})
				if err != nil {
					t.Fatal(err)
				}
				obj = o
			} else {
				if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.1}); err != nil {
					t.Fatal(err)
				}
				m.SetTraining(true) // dropout draws must replay on resume too
				o, err := NewDPO(m, pairs, 0, DPOConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if err := o.ComputeReference(context.Background(), nil, 4); err != nil {
					t.Fatal(err)
				}
				obj = o
			}
			cfg := trainerConfig(dir)
			cfg.MaxSteps = 6
			cfg.Resume = resume
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg.OnStep = func(r train.StepRecord) {
				if firstStep == 0 {
					firstStep = r.Step
				}
				if r.Step == stopAt {
					cancel()
				}
			}
			tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.Run(ctx)
			return m, err
		}
		whole, err := run(t.TempDir(), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := run(dir, 3, false); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: cancelled run returned %v", kind, err)
		}
		resumed, err := run(dir, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if firstStep != 4 {
			t.Fatalf("%s: the resumed run's first step is %d, want 4 (after checkpoint-3)", kind, firstStep)
		}
		a, b := paramValues(whole), paramValues(resumed)
		for i := range a {
			for j := range a[i] {
				if a[i][j] != b[i][j] {
					t.Fatalf("%s: parameter %d[%d]: uninterrupted %.9g, resumed %.9g", kind, i, j, a[i][j], b[i][j])
				}
			}
		}
	}
}

// TestLlamaGradientMatchesFiniteDifferences repeats the gradient check on
// a tiny Llama, in fp32 (the models' precision), for the coordinates of
// three weights with the largest gradients: fp32 rounding bounds the
// agreement to about a percent.
func TestLlamaGradientMatchesFiniteDifferences(t *testing.T) {
	const V = 16
	m := tinyLlama(t, V, 3)
	pairs := syntheticPairs(4, V)
	o, err := NewORPO(m, pairs, 0, ORPOConfig{Beta: 1})
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{0, 1, 2, 3}
	loss := func() float64 {
		var v float64
		torchx.NoGrad(func() {
			l, err := o.Loss(idx)
			if err != nil {
				t.Fatal(err)
			}
			v = l.Sum.Float64Values(true)[0]
		})
		return v
	}
	torchx.SetGradEnabled(true)
	l, err := o.Loss(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Sum.Backward(); err != nil {
		t.Fatal(err)
	}
	l.Sum.MustDrop()
	byName := map[string]train.Param{}
	for _, p := range m.NamedParameters() {
		byName[p.Name] = p
	}
	for _, name := range []string{"model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight"} {
		p := byName[name]
		g := p.T.MustGrad(false)
		grad := g.Float64Values(true)
		vals := p.T.Float64Values()
		shape := p.T.MustSize()
		set := func(v []float64) {
			torchx.NoGrad(func() {
				src := ts.MustOfSlice(v).MustTotype(gotch.Float, true).MustView(shape, true)
				p.T.Copy_(src)
				src.MustDrop()
			})
		}
		// The three largest gradients.
		order := make([]int, len(grad))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(math.Abs(grad[b]), math.Abs(grad[a])) })
		for _, i := range order[:3] {
			const h = 1e-3
			v := slices.Clone(vals)
			v[i] = vals[i] + h
			set(v)
			up := loss()
			v[i] = vals[i] - h
			set(v)
			down := loss()
			set(vals)
			fd := (up - down) / (2 * h)
			t.Logf("%s[%d]: autograd %.6g, finite difference %.6g", name, i, grad[i], fd)
			if math.Abs(fd-grad[i]) > 5e-4+0.01*math.Abs(grad[i]) {
				t.Errorf("%s[%d]: autograd %.6g, finite difference %.6g", name, i, grad[i], fd)
			}
		}
	}
}

// TestMixtralAuxLoss: for a Mixtral the router's load-balancing loss,
// weighted by router_aux_loss_coef, joins the preference loss per pair.
func TestMixtralAuxLoss(t *testing.T) {
	pairs := syntheticPairs(3, 16)
	loss := func(coef float64) (float64, float64) {
		cfg, err := train.ParseConfig([]byte(`{"architectures":["MixtralForCausalLM"],"vocab_size":16,"hidden_size":16,
			"intermediate_size":24,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,
			"num_local_experts":4,"num_experts_per_tok":2,"output_router_logits":true,"router_aux_loss_coef":` + strconv.FormatFloat(coef, 'g', -1, 64) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		m, err := train.NewModel(cfg, train.ModelOptions{Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Drop()
		o, err := NewORPO(m, pairs, 0, ORPOConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		var l *train.Loss
		torchx.NoGrad(func() {
			if l, err = o.Loss([]int{0, 1, 2}); err == nil {
				v = l.Sum.Float64Values(true)[0]
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return v, l.Metric("aux_loss")
	}
	base, aux := loss(0)
	with, _ := loss(0.5)
	if aux <= 0 {
		t.Fatalf("aux_loss metric %v; want > 0", aux)
	}
	if !closeTo(with-base, 0.5*aux, 1e-5) {
		t.Fatalf("loss with coefficient 0.5 exceeds the one without by %.7g; want 0.5 × summed aux %.7g", with-base, 0.5*aux)
	}
}

// BenchmarkStep times one forward + backward of the same 2×4 sequences of
// 96 tokens on a small Llama (V 2,000, D 128, 2 layers) as language
// modelling (train.LMObjective over the 8 rows) and as ORPO and DPO (4
// pairs): the cost of the preference objectives beyond the model.
func BenchmarkStep(b *testing.B) {
	const V, T = 2000, 96
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":2000,"hidden_size":128,
		"intermediate_size":344,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5}`))
	if err != nil {
		b.Fatal(err)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Drop()
	var pairs []tokenize.PreferenceExample
	var rows []tokenize.PackedRow
	for i := range 4 {
		prompt, c, r := make([]int, 32), make([]int, T-32), make([]int, T-32)
		for j := range prompt {
			prompt[j] = (i*131 + j*17) % V
		}
		for j := range c {
			c[j], r[j] = (i*7+j*29)%V, (i*11+j*37)%V
		}
		p := pair(prompt, c, r)
		pairs = append(pairs, p)
		rows = append(rows, p.Chosen.Row(), p.Rejected.Row())
	}
	orpo, err := NewORPO(m, pairs, 0, ORPOConfig{})
	if err != nil {
		b.Fatal(err)
	}
	dpo, err := NewDPO(m, pairs, 0, DPOConfig{})
	if err != nil {
		b.Fatal(err)
	}
	if err := dpo.ComputeReference(context.Background(), nil, 4); err != nil {
		b.Fatal(err)
	}
	objs := []struct {
		name string
		obj  train.Objective
		idx  []int
	}{
		{"lm", train.NewLMObjective(m, rows, 0), []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"orpo", orpo, []int{0, 1, 2, 3}},
		{"dpo", dpo, []int{0, 1, 2, 3}},
	}
	params := m.NamedParameters()
	torchx.SetGradEnabled(true)
	for _, o := range objs {
		b.Run(o.name, func(b *testing.B) {
			for b.Loop() {
				l, err := o.obj.Loss(o.idx)
				if err != nil {
					b.Fatal(err)
				}
				l.Sum.MustBackward()
				l.Sum.MustDrop()
				for _, p := range params {
					g := p.T.MustGrad(false)
					if g.MustDefined() {
						g.MustZero_()
					}
					g.MustDrop()
				}
			}
		})
	}
}
