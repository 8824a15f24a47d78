package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch/ts"
)

func forwardValues(t *testing.T, m *Model, ids []int64) []float32 {
	t.Helper()
	var v []float32
	torchx.NoGrad(func() {
		in := ts.MustOfSlice(ids).MustView([]int64{1, int64(len(ids))}, true)
		defer in.MustDrop()
		out, err := m.Forward(in, ForwardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v = values(out.Logits)
		out.Drop()
	})
	return v
}

func paramValues(m *Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range m.NamedParameters() {
		out[p.Name] = values(p.T)
	}
	return out
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		opts      SaveOptions
		wantFiles []string
		exact     bool
	}{
		{"single fp32", "mixtral", SaveOptions{DType: safetensors.F32}, []string{"model.safetensors"}, true},
		{"sharded fp32", "mixtral", SaveOptions{DType: safetensors.F32, MaxShardBytes: 40_000}, []string{"model-00001-of-00004.safetensors", "model.safetensors.index.json"}, true},
		// The Llama reference is stored in bf16: saving it as bf16 again
		// loses nothing.
		{"bf16 default", "llama", SaveOptions{}, []string{"model.safetensors"}, true},
		{"fp16 sharded", "mistral", SaveOptions{MaxShardBytes: 10_000}, []string{"model-00001-of-00005.safetensors", "model.safetensors.index.json"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadRef(t, tt.model)
			dir := t.TempDir()
			tokDir := t.TempDir()
			os.WriteFile(filepath.Join(tokDir, "tokenizer.json"), []byte(`{"model":{}}`), 0o644)
			os.WriteFile(filepath.Join(tokDir, "tokenizer_config.json"), []byte(`{}`), 0o644)
			opts := tt.opts
			opts.TokenizerDir = tokDir
			opts.EOSTokenIDs = []int{7}
			if err := m.Save(dir, opts); err != nil {
				t.Fatal(err)
			}
			for _, f := range append(tt.wantFiles, "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json") {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("missing %s: %v", f, err)
				}
			}
			var gen struct {
				EOS any `json:"eos_token_id"`
				BOS int `json:"bos_token_id"`
			}
			raw, _ := os.ReadFile(filepath.Join(dir, "generation_config.json"))
			json.Unmarshal(raw, &gen)
			eos, _ := json.Marshal(gen.EOS)
			wantEOS, _ := json.Marshal(append(slices.Clone(m.Config.EOSTokenIDs), 7))
			if string(eos) != string(wantEOS) || gen.BOS != 1 {
				t.Errorf("generation_config.json = %s; want eos %s", raw, wantEOS)
			}
			back, err := LoadModel(dir, ModelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer back.Drop()
			a, b := paramValues(m), paramValues(back)
			if len(a) != len(b) {
				t.Fatalf("%d parameters before, %d after", len(a), len(b))
			}
			for name, v := range a {
				if !slices.Equal(v, b[name]) {
					t.Errorf("%s differs after the round trip", name)
				}
			}
			ids := []int64{3, 9, 4, 11, 6}
			if d := maxDiff(forwardValues(t, m, ids), forwardValues(t, back, ids), nil, 1); d != 0 {
				t.Errorf("logits differ by %g after the round trip", d)
			}
			// Saving the reloaded model gives the same bytes.
			dir2 := t.TempDir()
			if err := back.Save(dir2, tt.opts); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.wantFiles {
				x, _ := os.ReadFile(filepath.Join(dir, f))
				y, _ := os.ReadFile(filepath.Join(dir2, f))
				if string(x) != string(y) {
					t.Errorf("%s differs between two saves", f)
				}
			}
		})
	}
}

func TestSaveBF16RoundsLikeTorch(t *testing.T) {
	m := loadRef(t, "mixtral") // fp32 weights
	dir := t.TempDir()
	if err := m.Save(dir, SaveOptions{DType: safetensors.BF16}); err != nil {
		t.Fatal(err)
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	got, err := set.ReadFloat32("model.norm.weight")
	if err != nil {
		t.Fatal(err)
	}
	want := values(m.net.Norm.Weight)
	for i := range want {
		if got[i] != safetensors.BF16ToFloat32(safetensors.Float32ToBF16(want[i])) {
			t.Fatalf("norm[%d]: stored %g; bf16 of %g is %g", i, got[i], want[i], safetensors.BF16ToFloat32(safetensors.Float32ToBF16(want[i])))
		}
	}
	var cfg map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	json.Unmarshal(raw, &cfg)
	if cfg["torch_dtype"] != "bfloat16" || cfg["num_local_experts"] != float64(4) {
		t.Errorf("config.json = %s", raw)
	}
}

func TestLoadModelErrors(t *testing.T) {
	src := filepath.Join("testdata", "ref", "mistral")
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	weights, _ := os.ReadFile(filepath.Join(src, "model.safetensors"))
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"more layers than weights", strings.Replace(string(cfg), `"num_hidden_layers": 2`, `"num_hidden_layers": 3`, 1), "model.layers.2.input_layernorm.weight is missing"},
		{"wider than weights", strings.Replace(string(cfg), `"intermediate_size": 40`, `"intermediate_size": 41`, 1), "needs [41 32]"},
		{"fewer layers than weights", strings.Replace(string(cfg), `"num_hidden_layers": 2`, `"num_hidden_layers": 1`, 1), "unexpected tensor model.layers.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(tt.config), 0o644)
			os.WriteFile(filepath.Join(dir, "model.safetensors"), weights, 0o644)
			_, err := LoadModel(dir, ModelOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v; want %q", err, tt.want)
			}
		})
	}
	if _, err := LoadModel(t.TempDir(), ModelOptions{}); err == nil {
		t.Error("empty folder loaded")
	}
	// A weights file cut short fails on its header check, before any
	// tensor is read.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	os.WriteFile(filepath.Join(dir, "model.safetensors"), weights[:len(weights)-100], 0o644)
	if _, err := LoadModel(dir, ModelOptions{}); err == nil || !strings.Contains(err.Error(), "run past the") {
		t.Errorf("truncated weights: %v", err)
	}
}

func TestNewModelParameters(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "ref", "mixtral", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg, ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	ps := m.NamedParameters()
	// embed, norm, head + per layer: 2 norms, 4 attention, router, 4·3 experts.
	if want := 3 + 2*(2+4+1+12); len(ps) != want {
		t.Fatalf("%d parameters; want %d", len(ps), want)
	}
	for _, p := range ps {
		isNorm := strings.HasSuffix(p.Name, "norm.weight")
		if !p.Trainable || p.NoDecay != isNorm || !p.T.MustRequiresGrad() {
			t.Errorf("%s: trainable %v, no-decay %v, requires grad %v", p.Name, p.Trainable, p.NoDecay, p.T.MustRequiresGrad())
		}
	}
	m2, _ := NewModel(cfg, ModelOptions{Seed: 1})
	defer m2.Drop()
	if !slices.Equal(values(m.net.Embed.Weight), values(m2.net.Embed.Weight)) {
		t.Error("same seed, different initialisation")
	}
	if _, err := NewModel(cfg, ModelOptions{DType: "int64"}); err == nil {
		t.Error("int64 parameters accepted")
	}
}

func TestAuxLossHasGradient(t *testing.T) {
	m := loadRef(t, "mixtral")
	in := ts.MustOfSlice([]int64{3, 9, 4, 11, 6, 2}).MustView([]int64{2, 3}, true)
	defer in.MustDrop()
	out, err := m.Forward(in, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	out.AuxLoss.MustBackward()
	router := m.net.Layers[0].FFN.(*sparseMoE).Router.(*Linear).Weight
	g := router.MustGrad(false)
	defer g.MustDrop()
	var sum float64
	for _, v := range values(g) {
		sum += float64(v * v)
	}
	if sum == 0 {
		t.Error("the aux loss gives the router no gradient")
	}
	router.ZeroGrad()
}
