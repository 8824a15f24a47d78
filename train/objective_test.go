package train

import (
	"context"
	"testing"

	"github.com/pltune/pltune/internal/torchx"

	"github.com/pltune/pltune/tokenize"
)

func tinyLlama(t testing.TB, vocab int) *Model {
	t.Helper()
	cfg, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama",
		"vocab_size":` + itoa(vocab) + `,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
		"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"rms_norm_eps":1e-5}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg, ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	return m
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// sequences of a simple grammar the model can learn: counting upwards mod
// the vocabulary, with the prompt (first token) not trained.
func countingRows(n, vocab int, pack bool) []tokenize.PackedRow {
	var seqs []tokenize.Sequence
	for i := range n {
		l := 4 + i%6
		s := tokenize.Sequence{}
		for j := range l {
			s.IDs = append(s.IDs, (i+j)%vocab)
			lab := (i + j) % vocab
			if j == 0 {
				lab = tokenize.IgnoreIndex
			}
			s.Labels = append(s.Labels, lab)
		}
		seqs = append(seqs, s)
	}
	if pack {
		rows, err := tokenize.Pack(seqs, 24)
		if err != nil {
			panic(err)
		}
		return rows
	}
	rows := make([]tokenize.PackedRow, len(seqs))
	for i, s := range seqs {
		rows[i] = s.Row()
	}
	return rows
}

// TestLMObjectiveBareRows: rows with only ids and labels (no segment or
// position ids) are one sequence each and train.
func TestLMObjectiveBareRows(t *testing.T) {
	m := tinyLlama(t, 16)
	rows := []tokenize.PackedRow{{IDs: []int{1, 2, 3, 4}, Labels: []int{1, 2, 3, 4}}, {IDs: []int{5, 6}, Labels: []int{5, 6}}}
	o := NewLMObjective(m, rows, 0)
	if u := o.Units([]int{0, 1}); u != 4 {
		t.Fatalf("Units = %d, want 4", u)
	}
	l, err := o.Loss([]int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Sum.MustDrop()
	if v := torchx.Float64s(l.Sum, false)[0]; !(v > 0) {
		t.Fatalf("loss %v: nothing trained", v)
	}
}

func TestLMObjectiveUnitsSkipSegmentBoundaries(t *testing.T) {
	o := &LMObjective{Rows: []tokenize.PackedRow{{
		IDs:        []int{5, 6, 7, 8, 9},
		Labels:     []int{-100, 6, 7, 8, 9},
		SegmentIDs: []int{1, 1, 1, 2, 2},
	}}}
	// Targets: 6 (from 5), 7 (from 6), not 8 (new segment), 9 (from 8).
	if got := o.Units([]int{0}); got != 3 {
		t.Fatalf("Units = %d, want 3", got)
	}
}

// TestSFTLossDecreases trains a tiny random Llama through the loop on
// packed and unpacked rows; the loss must fall.
func TestSFTLossDecreases(t *testing.T) {
	for _, pack := range []bool{false, true} {
		m := tinyLlama(t, 16)
		rows := countingRows(24, 16, pack)
		cfg := DefaultTrainerConfig()
		cfg.OutDir = t.TempDir()
		cfg.LR = 3e-3
		cfg.Epochs = 8
		cfg.BatchSize = 4
		if pack { // fewer, longer rows
			cfg.Epochs, cfg.BatchSize = 30, 2
		}
		var first, last float64
		cfg.OnStep = func(r StepRecord) {
			if r.Step == 1 {
				first = r.Loss
			}
			last = r.Loss
		}
		tr, err := NewTrainer(cfg, m.NamedParameters(), NewLMObjective(m, rows, 0), NewLMObjective(m, rows[:4], 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !(last < first*0.6) {
			t.Fatalf("pack=%v: loss %.3f → %.3f, did not fall", pack, first, last)
		}
	}
}
