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

// perturbAdapters gives every B a random value, as training would.
func perturbAdapters(m *Model) {
	torchx.NoGrad(func() {
		for _, l := range m.adapters() {
			l.B.Weight.MustNormal_(0, 0.2)
		}
	})
}

func TestLoRAMergeEqualsAdapters(t *testing.T) {
	for _, tt := range []struct {
		model   string
		targets []string
	}{
		{"llama", []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
		{"mixtral", []string{"q_proj", "v_proj", "w1", "w2", "w3"}},
	} {
		t.Run(tt.model, func(t *testing.T) {
			m := loadRef(t, tt.model)
			ids := []int64{3, 9, 4, 11, 6, 20, 5}
			base := forwardValues(t, m, ids)
			if err := ApplyLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, TargetModules: tt.targets}); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(forwardValues(t, m, ids), base, nil, 1); d != 0 {
				t.Errorf("fresh adapters (B = 0) change logits by %g", d)
			}
			perturbAdapters(m)
			adapted := forwardValues(t, m, ids)
			if d := maxDiff(adapted, base, nil, 1); d < 1e-3 {
				t.Fatalf("adapters change logits by only %g", d)
			}
			m.SetAdaptersEnabled(false)
			if d := maxDiff(forwardValues(t, m, ids), base, nil, 1); d != 0 {
				t.Errorf("adapters switched off: logits differ from the base by %g", d)
			}
			m.SetAdaptersEnabled(true)
			if err := m.MergeLoRA(); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(forwardValues(t, m, ids), adapted, nil, 1); d > 1e-4 {
				t.Errorf("merged model differs from base + adapters by %g", d)
			}
			if m.LoRA() != nil {
				t.Error("adapters still present after the merge")
			}
			for _, p := range m.NamedParameters() {
				if strings.Contains(p.Name, "lora_") || !p.Trainable {
					t.Errorf("after merge: %s trainable %v", p.Name, p.Trainable)
				}
			}
		})
	}
}

func TestLoRATrainsOnlyAdapters(t *testing.T) {
	m := loadRef(t, "mistral")
	if err := ApplyLoRA(m, LoRAConfig{Rank: 2, Dropout: 0.1}); err != nil {
		t.Fatal(err)
	}
	var trainable []string
	for _, p := range m.NamedParameters() {
		if p.Trainable {
			trainable = append(trainable, p.Name)
		}
	}
	want := []string{
		"model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_B.weight",
		"model.layers.0.self_attn.v_proj.lora_A.weight", "model.layers.0.self_attn.v_proj.lora_B.weight",
		"model.layers.1.self_attn.q_proj.lora_A.weight", "model.layers.1.self_attn.q_proj.lora_B.weight",
		"model.layers.1.self_attn.v_proj.lora_A.weight", "model.layers.1.self_attn.v_proj.lora_B.weight",
	}
	if !slices.Equal(trainable, want) {
		t.Errorf("trainable = %v\nwant %v", trainable, want)
	}
	// Dropout acts in training mode only.
	ids := []int64{3, 9, 4, 11}
	perturbAdapters(m)
	eval := forwardValues(t, m, ids)
	m.SetTraining(true)
	if d := maxDiff(forwardValues(t, m, ids), eval, nil, 1); d == 0 {
		t.Error("dropout 0.1 in training mode changed nothing")
	}
	in := ts.MustOfSlice(ids).MustView([]int64{1, 4}, true)
	defer in.MustDrop()
	out, err := m.Forward(in, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loss := out.Logits.MustSquare(false).MustMean(out.Logits.DType(), true)
	loss.MustBackward()
	loss.MustDrop()
	out.Drop()
	a := m.net.Layers[0].Attn.Q.(*loraLinear).A.Weight.MustGrad(false)
	defer a.MustDrop()
	if v := values(a); slices.Max(v) == 0 && slices.Min(v) == 0 {
		t.Error("lora_A got no gradient")
	}
	m.SetTraining(false)
	if err := ApplyLoRA(m, LoRAConfig{}); err == nil {
		t.Error("second ApplyLoRA accepted")
	}
}

func TestLoRABadTarget(t *testing.T) {
	m := loadRef(t, "mixtral")
	err := ApplyLoRA(m, LoRAConfig{TargetModules: []string{"gate_proj"}})
	if err == nil || !strings.Contains(err.Error(), `"gate_proj" is not in a MixtralForCausalLM`) || !strings.Contains(err.Error(), "w1") {
		t.Errorf("error %v", err)
	}
}

func TestAdapterRoundTripPEFTLayout(t *testing.T) {
	m := loadRef(t, "llama")
	if err := ApplyLoRA(m, LoRAConfig{Rank: 4, Alpha: 16, Dropout: 0.05, TargetModules: []string{"q_proj", "down_proj"}}); err != nil {
		t.Fatal(err)
	}
	perturbAdapters(m)
	dir := t.TempDir()
	if err := m.SaveAdapter(dir, "llama-ref"); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["peft_type"] != "LORA" || cfg["r"] != float64(4) || cfg["lora_alpha"] != float64(16) || cfg["task_type"] != "CAUSAL_LM" || cfg["base_model_name_or_path"] != "llama-ref" {
		t.Errorf("adapter_config.json = %s", raw)
	}
	f, err := safetensors.OpenFile(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	names := f.Names()
	f.Close()
	slices.Sort(names)
	if len(names) != 8 || names[0] != "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight" ||
		!slices.Contains(names, "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight") {
		t.Errorf("adapter keys %v", names)
	}
	info, _ := f.Info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
	if !slices.Equal(info.Shape, []int64{4, 32}) || info.DType != safetensors.F32 {
		t.Errorf("q_proj lora_A: %+v", info)
	}

	ids := []int64{3, 9, 4, 11, 6}
	// The base is bf16; the adapters are fp32 (PEFT's default) and saved
	// as such, so a reload gives the same bytes.
	fresh := loadRef(t, "llama")
	if err := LoadAdapter(fresh, dir); err != nil {
		t.Fatal(err)
	}
	again := t.TempDir()
	if err := fresh.SaveAdapter(again, "llama-ref"); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(filepath.Join(dir, "adapter_model.safetensors"))
	y, _ := os.ReadFile(filepath.Join(again, "adapter_model.safetensors"))
	if string(x) != string(y) {
		t.Error("adapter changed in a save → load → save round trip")
	}
	if d := maxDiff(forwardValues(t, fresh, ids), forwardValues(t, m, ids), nil, 1); d > 0.05 {
		t.Errorf("loaded adapter's logits differ by %g", d)
	}
	if got := fresh.LoRA(); got == nil || got.Rank != 4 || got.Dropout != 0.05 || !slices.Equal(got.TargetModules, []string{"q_proj", "down_proj"}) {
		t.Errorf("loaded LoRA config %+v", got)
	}

	for _, bad := range []string{
		`{"peft_type":"PREFIX_TUNING","r":4}`,
		`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":"q_proj|v_proj"}`,
		`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"],"use_dora":true}`,
		`{"peft_type":"LORA","r":0,"lora_alpha":8,"target_modules":["q_proj"]}`,
	} {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "adapter_config.json"), []byte(bad), 0o644)
		base := loadRef(t, "llama")
		if err := LoadAdapter(base, d); err == nil {
			t.Errorf("adapter config %s accepted", bad)
		}
	}
}
