package align

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/safetensors"
)

// trlTol bounds the differences from TRL: absolute, or relative to the
// scale of the operands where that is larger than 1. Log-odds and rewards
// are differences of log-probabilities tens of nats large, which fp32
// holds to about 1e-6 of their size in any summation order.
const trlTol = 1e-6

type trlPair struct {
	PromptLen int   `json:"prompt_len"`
	Chosen    []int `json:"chosen"`
	Rejected  []int `json:"rejected"`
}

// polishPairs tokenizes Polish questions with a better and a worse answer
// (Mistral's tokenizer, BOS first, EOS after each answer).
func polishPairs(t *testing.T) ([]tokenize.PreferenceExample, []trlPair, string, int) {
	t.Helper()
	dir, err := pyref.TokenizerDir("llama2")
	if err != nil {
		t.Skip(err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	tok, err := tokenize.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.TokenToID("</s>")
	qa := [][3]string{
		{"Jaka jest stolica Polski?", "Stolicą Polski jest Warszawa.", "Kraków, od zawsze i na zawsze."},
		{"Ile nóg ma pająk?", "Pająk ma osiem nóg.", "Sześć, jak każdy owad."},
		{"Przetłumacz na angielski: dzień dobry.", "Good morning.", "Dobry dzień to taki, w którym świeci słońce."},
	}
	var ex []tokenize.PreferenceExample
	var raw []trlPair
	for _, q := range qa {
		prompt := tok.Encode("Pytanie: "+q[0]+"\nOdpowiedź:", true)
		seq := func(answer string) tokenize.Sequence {
			ids := append(append([]int{}, prompt...), tok.Encode(" "+answer, false)...)
			ids = append(ids, eos)
			labels := make([]int, len(ids))
			for i := range labels {
				labels[i] = ids[i]
				if i < len(prompt) {
					labels[i] = tokenize.IgnoreIndex
				}
			}
			return tokenize.Sequence{IDs: ids, Labels: labels}
		}
		p := tokenize.PreferenceExample{Chosen: seq(q[1]), Rejected: seq(q[2]), PromptLen: len(prompt)}
		ex = append(ex, p)
		raw = append(raw, trlPair{len(prompt), p.Chosen.IDs, p.Rejected.IDs})
	}
	return ex, raw, path, tok.VocabSize()
}

func checkClose(t *testing.T, what string, got, want float64) {
	t.Helper()
	checkCloseScale(t, what, got, want, math.Abs(want))
}

func checkCloseScale(t *testing.T, what string, got, want, scale float64) {
	t.Helper()
	if d := math.Abs(got - want); d > trlTol*math.Max(1, scale) {
		t.Errorf("%s: pltune %.9g, TRL %.9g (difference %.3g)", what, got, want, d)
	}
}

// checkGrads compares every parameter's gradient with TRL's and clears it.
func checkGrads(t *testing.T, what string, m *train.Model, ref *safetensors.File, prefix string, scale float64) {
	t.Helper()
	var worst float64
	var worstName string
	for _, p := range m.NamedParameters() {
		want, err := ref.ReadFloat32(prefix + ".grad." + p.Name)
		if err != nil {
			t.Fatalf("%s: TRL has no gradient for %s: %v", what, p.Name, err)
		}
		g := p.T.MustGrad(false)
		got := g.Float64Values(false)
		g.MustZero_()
		g.MustDrop()
		for i := range got {
			if d := math.Abs(got[i]*scale - float64(want[i])); d > worst {
				worst, worstName = d, p.Name
			}
		}
	}
	if worst > trlTol {
		t.Errorf("%s: gradients differ from TRL's by up to %.3g (%s)", what, worst, worstName)
	} else {
		t.Logf("%s: gradients within %.2g of TRL's", what, worst)
	}
}

func readScalars(t *testing.T, f *safetensors.File, name string) []float64 {
	t.Helper()
	info, ok := f.Info(name)
	if !ok {
		t.Fatalf("TRL output has no %s", name)
	}
	raw, err := f.ReadRaw(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, info.Shape[0])
	for i := range out {
		var b uint64
		for k := 7; k >= 0; k-- {
			b = b<<8 | uint64(raw[8*i+k])
		}
		out[i] = math.Float64frombits(b)
	}
	return out
}

// TestTRLParity checks ORPO and DPO against TRL 1.16's own code on the same
// tiny Llama (pltune's, saved and loaded by transformers) and the same
// Polish pairs: ORPO through ORPOTrainer's concatenated_forward and
// odds_ratio_loss (pltune with NLLOnPrompt, as TRL; one pair per batch, as
// TRL's NLL is a token mean over the batch and pltune's a mean per pair),
// DPO through DPOTrainer's loss on one batch of all pairs with a separate
// reference model. Losses, rewards, log-odds and every gradient agree
// within 1e-6.
func TestTRLParity(t *testing.T) {
	py := pyref.Require(t)
	pairs, raw, tokPath, vocab := polishPairs(t)
	dir := t.TempDir()
	cfg, err := train.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"model_type":"llama",
		"vocab_size":%d,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,
		"num_key_value_heads":2,"max_position_embeddings":128,"rms_norm_eps":1e-5,"torch_dtype":"float32"}`, vocab)))
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]*train.Model{}
	for i, name := range []string{"policy", "reference"} {
		m, err := train.NewModel(cfg, train.ModelOptions{Seed: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Drop)
		if err := m.Save(filepath.Join(dir, name), train.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		models[name] = m
	}
	const beta = 0.1
	req, _ := json.Marshal(map[string]any{
		"policy": filepath.Join(dir, "policy"), "reference": filepath.Join(dir, "reference"),
		"tokenizer": tokPath, "beta": beta, "pad": 0, "pairs": raw,
	})
	reqPath, outPath := filepath.Join(dir, "request.json"), filepath.Join(dir, "trl.safetensors")
	if err := os.WriteFile(reqPath, req, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "trl", "trl_parity.py"), reqPath, outPath)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error", "TQDM_DISABLE=1", "TRL_EXPERIMENTAL_SILENCE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trl_parity.py: %v\n%s", err, out)
	}
	ref, err := safetensors.OpenFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()

	policy := models["policy"]
	orpo, err := NewORPO(policy, pairs, 0, ORPOConfig{Beta: beta, NLLOnPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	torchx.SetGradEnabled(true)
	for i := range pairs {
		l, err := orpo.Loss([]int{i})
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, fmt.Sprintf("ORPO loss of pair %d", i), l.Sum.Float64Values()[0], readScalars(t, ref, fmt.Sprintf("orpo.%d.loss", i))[0])
		if err := l.Sum.Backward(); err != nil {
			t.Fatal(err)
		}
		l.Sum.MustDrop()
		checkGrads(t, fmt.Sprintf("ORPO, pair %d", i), policy, ref, fmt.Sprintf("orpo.%d", i), 1)
	}
	all := []int{0, 1, 2}
	var metrics map[string]float64
	torchx.NoGrad(func() {
		l, err := orpo.Loss(all)
		if err != nil {
			t.Fatal(err)
		}
		l.Sum.MustDrop()
		metrics = l.AllMetrics()
	})
	// pltune's metrics are sums over the batch: compare with TRL's per-pair values summed.
	// The log-odds are a difference of mean log-probs.
	logpScale := math.Abs(metrics["logps_chosen"]) + math.Abs(metrics["logps_rejected"])
	for name, key := range map[string]string{"rewards_chosen": "orpo.rewards_chosen", "rewards_rejected": "orpo.rewards_rejected", "log_odds": "orpo.log_odds"} {
		var want float64
		for _, v := range readScalars(t, ref, key) {
			want += v
		}
		checkCloseScale(t, "ORPO "+name+" (sum over the batch)", metrics[name], want, max(math.Abs(want), logpScale))
	}
	for i := range pairs {
		var one map[string]float64
		torchx.NoGrad(func() {
			l, err := orpo.Loss([]int{i})
			if err != nil {
				t.Fatal(err)
			}
			l.Sum.MustDrop()
			one = l.AllMetrics()
		})
		checkClose(t, fmt.Sprintf("ORPO log-odds of pair %d", i), one["log_odds"], readScalars(t, ref, "orpo.log_odds")[i])
		checkClose(t, fmt.Sprintf("ORPO chosen reward of pair %d", i), one["rewards_chosen"], readScalars(t, ref, "orpo.rewards_chosen")[i])
	}

	dpo, err := NewDPO(policy, pairs, 0, DPOConfig{Beta: beta})
	if err != nil {
		t.Fatal(err)
	}
	if err := dpo.ComputeReference(context.Background(), models["reference"], 2); err != nil {
		t.Fatal(err)
	}
	torchx.SetGradEnabled(true)
	l, err := dpo.Loss(all)
	if err != nil {
		t.Fatal(err)
	}
	n := float64(len(all))
	// TRL's loss and metrics are batch means; pltune's Loss sums them.
	checkClose(t, "DPO loss", l.Sum.Float64Values()[0]/n, readScalars(t, ref, "dpo.loss")[0])
	for _, name := range []string{"logps_chosen", "logps_rejected"} {
		checkClose(t, "DPO "+name, l.Metric(name)/n, readScalars(t, ref, "dpo."+name)[0])
	}
	// The rewards are β·(π − ref) of summed log-probs.
	for _, side := range []string{"chosen", "rejected"} {
		scale := beta * math.Abs(l.Metric("logps_"+side)/n)
		checkCloseScale(t, "DPO rewards_"+side, l.Metric("rewards_"+side)/n, readScalars(t, ref, "dpo.rewards_"+side)[0], scale)
	}
	if err := l.Sum.Backward(); err != nil {
		t.Fatal(err)
	}
	l.Sum.MustDrop()
	checkGrads(t, "DPO", policy, ref, "dpo", 1/n)
}
