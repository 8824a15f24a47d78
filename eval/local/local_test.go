package local

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch/ts"
)

var polish = []string{
	"Stolicą Polski jest Warszawa, a najdłuższą rzeką Wisła.",
	"Ala ma kota, a kot ma Alę. Cześć! Jak się masz?",
	"Mikołaj Kopernik urodził się w Toruniu w 1473 roku.",
}

func tinyModel(t testing.TB, layers int) (*train.Model, *tokenize.Tokenizer) {
	return sizedModel(t, layers, 64, 128)
}

func sizedModel(t testing.TB, layers, hidden, mlp int) (*train.Model, *tokenize.Tokenizer) {
	t.Helper()
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(polish), tokenize.BPETrainOptions{VocabSize: 320})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tt.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":` + itoa(tok.VocabSize()) + `,
		"hidden_size":` + itoa(hidden) + `,"intermediate_size":` + itoa(mlp) + `,"num_hidden_layers":` + itoa(layers) + `,"num_attention_heads":4,
		"num_key_value_heads":2,"max_position_embeddings":1024,"rms_norm_eps":1e-5}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	return m, tok
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}

// TestLoglikelihoodIsScoreDifference: log P(continuation | context) equals
// the log-probability of the whole text minus that of the context.
func TestLoglikelihoodIsScoreDifference(t *testing.T) {
	m, tok := tinyModel(t, 2)
	l, err := New(m, tok, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	reqs := []eval.LoglikelihoodRequest{
		{Context: "Stolicą Polski jest", Continuation: " Warszawa"},
		{Context: "Mikołaj Kopernik urodził się w", Continuation: " Toruniu w 1473 roku."},
	}
	got, err := l.Loglikelihood(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		whole := tok.Encode(r.Context+r.Continuation, true)
		ctx := tok.Encode(r.Context, true)
		s, err := m.Score(context.Background(), [][]int{whole, ctx})
		if err != nil {
			t.Fatal(err)
		}
		if want := s[0] - s[1]; math.Abs(got[i].LogProb-want) > 1e-4 {
			t.Errorf("request %d: loglikelihood %.5f, score difference %.5f", i, got[i].LogProb, want)
		}
		if got[i].LogProb >= 0 {
			t.Errorf("request %d: log-probability %.5f not negative", i, got[i].LogProb)
		}
	}
}

func TestGenerate(t *testing.T) {
	m, tok := tinyModel(t, 2)
	l, err := New(m, tok, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	chat := []corpus.Message{{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"}}
	reqs := []eval.GenerateRequest{
		{Messages: chat, MaxTokens: 6},
		{Prompt: "Ala ma", MaxTokens: 6},
		{Messages: chat, MaxTokens: 6, Temperature: 1, Seed: 3},
		{Messages: chat, MaxTokens: 6, Temperature: 1, Seed: 3},
	}
	gen, err := l.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gen {
		if g.Tokens == 0 || g.Tokens > 6 {
			t.Errorf("request %d: %d tokens, want 1..6", i, g.Tokens)
		}
	}
	if gen[2] != gen[3] {
		t.Errorf("same seed, different samples: %+v vs %+v", gen[2], gen[3])
	}
	// A stop sequence cuts the text.
	if gen[0].Text != "" {
		stop := string([]rune(gen[0].Text)[:1])
		again, err := l.Generate(context.Background(), []eval.GenerateRequest{{Messages: chat, MaxTokens: 6, Stop: []string{stop}}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(again[0].Text, stop) || again[0].FinishReason != "stop" {
			t.Errorf("stop %q not honoured: %+v", stop, again[0])
		}
	}
}

// generateUncached decodes greedily by recomputing the whole sequence for
// every new token: the baseline the KV cache is measured against.
func generateUncached(m *train.Model, prompt []int, n int) []int {
	ids := slices.Clone(prompt)
	for range n {
		v := make([]int64, len(ids))
		for i, id := range ids {
			v[i] = int64(id)
		}
		in := ts.MustOfSlice(v).MustView([]int64{1, int64(len(v))}, true)
		var next int
		ts.NoGrad(func() {
			out, err := m.Forward(in, train.ForwardOptions{LastOnly: true})
			if err != nil {
				panic(err)
			}
			am := out.Logits.MustArgmax([]int64{-1}, false, false)
			next = int(am.Int64Values(true)[0])
			out.Drop()
		})
		in.MustDrop()
		ids = append(ids, next)
	}
	return ids[len(prompt):]
}

func TestCachedGenerationMatchesRecomputation(t *testing.T) {
	m, tok := tinyModel(t, 2)
	prompt := tok.Encode("Stolicą Polski jest", true)
	cached, err := m.Generate(context.Background(), [][]int{prompt}, train.GenerateOptions{MaxNewTokens: 12, StopIDs: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := generateUncached(m, prompt, 12); !slices.Equal(cached[0], want) {
		t.Fatalf("cached %v, recomputed %v", cached[0], want)
	}
}

// BenchmarkGenerate compares greedy decoding of 64 tokens after a
// 256-token prompt with the KV cache and by recomputation, on a 4-layer
// model of hidden size 256.
func BenchmarkGenerate(b *testing.B) {
	m, tok := sizedModel(b, 4, 256, 688)
	prompt := tok.Encode(strings.Repeat(polish[0]+" ", 20), true)[:256]
	b.Run("cached", func(b *testing.B) {
		for range b.N {
			if _, err := m.Generate(context.Background(), [][]int{prompt}, train.GenerateOptions{MaxNewTokens: 64, StopIDs: []int{}}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("recompute", func(b *testing.B) {
		for range b.N {
			generateUncached(m, prompt, 64)
		}
		b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
