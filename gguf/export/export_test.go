package export

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train/hfconfig"
	"github.com/pltune/pltune/train/safetensors"
)

// trainedTokenizer writes a small byte-level BPE tokenizer (Llama-3 split,
// Llama-3-style chat template) trained on Polish text.
func trainedTokenizer(t *testing.T) string {
	t.Helper()
	texts := []string{"Warszawa to stolica Polski.", "Wisła płynie przez Kraków i Warszawę.", "Ala ma kota, a kot ma Alę."}
	tr, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 320})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tok")
	if err := tr.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tinyConfig(vocab int, extra string) string {
	return `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":` + itoa(vocab) + `,"hidden_size":32,
"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,
"max_position_embeddings":256,"rms_norm_eps":1e-5` + extra + `}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func tokCount(t *testing.T, dir string) int {
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := tokenCount(tj)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPermuteRows checks the Q/K permutation against its definition in
// convert_hf_to_gguf.py: reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).
func TestPermuteRows(t *testing.T) {
	const heads, hd, cols = 3, 6, 2
	vals := make([]float32, heads*hd*cols)
	for i := range vals {
		vals[i] = float32(i)
	}
	orig := slices.Clone(vals)
	permuteRows(vals, heads*hd, cols, hd)
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			for j := 0; j < 2; j++ {
				// out[h, i, j] = in[h, j, i]
				out := ((h*(hd/2)+i)*2 + j) * cols
				in := ((h*2+j)*(hd/2) + i) * cols
				if !slices.Equal(vals[out:out+cols], orig[in:in+cols]) {
					t.Fatalf("head %d pair %d half %d: got %v want %v", h, i, j, vals[out:out+cols], orig[in:in+cols])
				}
			}
		}
	}
}

// TestRopeFactors: dividing the unscaled inverse frequencies by the
// rope_freqs factors gives transformers' llama3-scaled frequencies
// (hfconfig.RopeInvFreq), which is how llama.cpp applies them.
func TestRopeFactors(t *testing.T) {
	c, err := hfconfig.Parse([]byte(tinyConfig(100, `,"rope_theta":500000,"rope_scaling":{"rope_type":"llama3","factor":8,
"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}`)))
	if err != nil {
		t.Fatal(err)
	}
	scaled := c.RopeInvFreq()
	f := ropeFactors(c)
	plain := *c
	plain.RopeScaling = nil
	base := plain.RopeInvFreq()
	if len(f) != c.HeadDim/2 {
		t.Fatalf("%d factors, want %d", len(f), c.HeadDim/2)
	}
	seen := map[bool]bool{}
	for i := range f {
		got := base[i] / float64(f[i])
		if math.Abs(got-scaled[i]) > 1e-6*scaled[i] {
			t.Errorf("freq %d: %g / %g = %g, transformers %g", i, base[i], f[i], got, scaled[i])
		}
		seen[f[i] == 1] = true
	}
	if !seen[true] || !seen[false] {
		t.Errorf("factors %v: want both unscaled and scaled frequencies in this config", f)
	}
}

// writeFolder writes a random model with the trained tokenizer.
func writeFolder(t *testing.T, extra string) (dir string, cfg *hfconfig.Config) {
	tok := trainedTokenizer(t)
	dir = filepath.Join(t.TempDir(), "model")
	cfg = writeRandomModel(t, dir, tinyConfig(tokCount(t, tok), extra), tok, safetensors.F32, 3)
	return dir, cfg
}

// TestLoRAMerged: exporting base + adapter gives the tensors of exporting
// a checkpoint whose weights are W + (alpha/r)·B·A, computed here in
// float64, and the adapter is checked against the weights it adapts.
func TestLoRAMerged(t *testing.T) {
	dir, cfg := writeFolder(t, "")
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const r, alpha = 2, 8.0
	ad := filepath.Join(t.TempDir(), "adapter")
	os.MkdirAll(ad, 0o755)
	os.WriteFile(filepath.Join(ad, "adapter_config.json"), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":8,"target_modules":["q_proj","v_proj"],"bias":"none"}`), 0o644)
	var srcs []safetensors.Source
	merged := map[string][]float32{}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		for _, mod := range []string{"q_proj", "v_proj"} {
			name := "model.layers." + itoa(l) + ".self_attn." + mod
			w, err := set.ReadFloat32(name + ".weight")
			if err != nil {
				t.Fatal(err)
			}
			info, _ := set.Info(name + ".weight")
			out, in := info.Shape[0], info.Shape[1]
			a := make([]float32, r*in)
			b := make([]float32, out*r)
			for i := range a {
				a[i] = float32(math.Sin(float64(i+l)) * 0.3)
			}
			for i := range b {
				b[i] = float32(math.Cos(float64(i*3+l)) * 0.2)
			}
			m := make([]float32, len(w))
			for o := int64(0); o < out; o++ {
				for c := int64(0); c < in; c++ {
					var d float64
					for k := int64(0); k < r; k++ {
						d += float64(b[o*r+k]) * float64(a[k*in+c])
					}
					m[o*in+c] = float32(float64(w[o*in+c]) + alpha/r*d)
				}
			}
			merged[name+".weight"] = m
			for _, p := range []struct {
				suffix string
				v      []float32
				shape  []int64
			}{{".lora_A.weight", a, []int64{r, in}}, {".lora_B.weight", b, []int64{out, r}}} {
				data, _ := safetensors.EncodeFloat32(nil, safetensors.F32, p.v)
				srcs = append(srcs, safetensors.Source{Tensor: safetensors.Tensor{Name: peftPrefix + name + p.suffix, DType: safetensors.F32, Shape: p.shape},
					Data: func() ([]byte, error) { return data, nil }})
			}
		}
	}
	if err := safetensors.WriteFile(filepath.Join(ad, "adapter_model.safetensors"), srcs, nil); err != nil {
		t.Fatal(err)
	}
	// The reference: the same folder with merged weights.
	ref := filepath.Join(t.TempDir(), "merged")
	os.MkdirAll(ref, 0o755)
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(ref, f), b, 0o644)
	}
	var all []safetensors.Source
	for _, n := range set.Names() {
		v, _ := set.ReadFloat32(n)
		if m, ok := merged[n]; ok {
			v = m
		}
		info, _ := set.Info(n)
		data, _ := safetensors.EncodeFloat32(nil, safetensors.F32, v)
		all = append(all, safetensors.Source{Tensor: safetensors.Tensor{Name: n, DType: safetensors.F32, Shape: info.Shape},
			Data: func() ([]byte, error) { return data, nil }})
	}
	set.Close()
	if err := safetensors.WriteFile(filepath.Join(ref, "model.safetensors"), all, nil); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Export(context.Background(), dir, filepath.Join(out, "lora.gguf"), Options{Type: gguf.F32, AdapterDir: ad})
	if err != nil {
		t.Fatal(err)
	}
	if res.Merged != 2*cfg.NumHiddenLayers {
		t.Errorf("merged %d weights, want %d", res.Merged, 2*cfg.NumHiddenLayers)
	}
	if _, err := Export(context.Background(), ref, filepath.Join(out, "ref.gguf"), Options{Type: gguf.F32}); err != nil {
		t.Fatal(err)
	}
	a, _ := gguf.OpenFile(filepath.Join(out, "lora.gguf"))
	b, _ := gguf.OpenFile(filepath.Join(out, "ref.gguf"))
	defer a.Close()
	defer b.Close()
	for _, ti := range b.Tensors {
		va, _ := a.ReadFloat32(ti.Name)
		vb, _ := b.ReadFloat32(ti.Name)
		worst := 0.0
		for i := range va {
			worst = max(worst, math.Abs(float64(va[i]-vb[i])))
		}
		if worst > 1e-6 {
			t.Errorf("%s: merged export differs from the merged checkpoint by %g", ti.Name, worst)
		}
	}

	// An adapter that does not fit is refused with the module's name.
	os.WriteFile(filepath.Join(ad, "adapter_config.json"), []byte(`{"peft_type":"LORA","r":2,"lora_alpha":8,"use_dora":true}`), 0o644)
	if _, err := Export(context.Background(), dir, filepath.Join(out, "x.gguf"), Options{AdapterDir: ad}); err == nil || !strings.Contains(err.Error(), "use_dora") {
		t.Errorf("DoRA adapter: err = %v", err)
	}
}

// TestExportErrors: bad folders are refused with what and where, and no
// partial file is left behind.
func TestExportErrors(t *testing.T) {
	dir, _ := writeFolder(t, "")
	out := filepath.Join(t.TempDir(), "m.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Export(ctx, dir, out, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a cancelled export left %s", out)
	}
	if _, err := os.Stat(out + ".partial"); err == nil {
		t.Errorf("a cancelled export left %s.partial", out)
	}
	if _, err := Export(context.Background(), dir, out, Options{Type: gguf.TensorType(99)}); err == nil {
		t.Error("unknown type accepted")
	}
	noTok := filepath.Join(t.TempDir(), "notok")
	os.MkdirAll(noTok, 0o755)
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(noTok, f), b, 0o644)
	}
	if _, err := Export(context.Background(), noTok, out, Options{}); !errors.Is(err, errNoTokenizer) {
		t.Errorf("no tokenizer: err = %v", err)
	}
	// A config that does not match the weights names the tensor.
	cfgB, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(strings.Replace(string(cfgB), `"intermediate_size":64`, `"intermediate_size":96`, 1)), 0o644)
	if _, err := Export(context.Background(), dir, out, Options{}); err == nil || !strings.Contains(err.Error(), "config.json implies") {
		t.Errorf("shape mismatch: err = %v", err)
	}
}

// TestQ8FallsBackToF16: a matrix whose rows are not a multiple of 32
// values is written F16, as llama.cpp's converter does.
func TestQ8FallsBackToF16(t *testing.T) {
	if got := tensorType("blk.0.attn_q.weight", 2, 48, gguf.Q8_0); got != gguf.F16 {
		t.Errorf("48-wide Q8_0 → %v, want F16", got)
	}
	if got := tensorType("blk.0.attn_norm.weight", 1, 64, gguf.Q8_0); got != gguf.F32 {
		t.Errorf("norm → %v, want F32", got)
	}
	if got := tensorType("blk.0.ffn_gate_inp.weight", 2, 64, gguf.BF16); got != gguf.F32 {
		t.Errorf("router → %v, want F32", got)
	}
}

// TestOllamaTemplates renders each ollama TEMPLATE with Go's text/template
// (ollama's engine) and compares it with pltune's rendering of the same
// conversation through the family's Hugging Face chat template, less the
// begin-of-text token llama.cpp adds itself.
func TestOllamaTemplates(t *testing.T) {
	type msg struct{ Role, Content string }
	convs := [][]msg{
		{{"user", "Jaka jest stolica Polski?"}},
		{{"system", "Odpowiadaj krótko."}, {"user", "Ile nóg ma kot?"}, {"assistant", "Cztery."}, {"user", "A pies?"}},
	}
	for _, name := range []string{"llama3", "chatml", "gemma", "mistral"} {
		src, ok := tokenize.BuiltinTemplate(name)
		if !ok {
			t.Fatalf("no built-in %s template", name)
		}
		if got := ChatFormat(src); got != name {
			t.Errorf("ChatFormat(%s template) = %q", name, got)
		}
		hf, err := tokenize.NewChatTemplate(src, tokenize.Config{BOSToken: map[string]string{"llama3": "<|begin_of_text|>", "gemma": "<bos>", "mistral": "<s>"}[name], EOSToken: map[string]string{"mistral": "</s>"}[name]})
		if err != nil {
			t.Fatal(err)
		}
		tmplText, _ := OllamaTemplate(name)
		gt, err := template.New(name).Parse(tmplText)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, conv := range convs {
			if name == "mistral" && conv[0].Role == "system" {
				continue // Mistral's templates differ on where the system prompt goes
			}
			var cm []corpus.Message
			for _, m := range conv {
				cm = append(cm, corpus.Message{Role: corpus.Role(m.Role), Content: m.Content})
			}
			want, err := hf.Render(cm, true)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, bos := range []string{"<|begin_of_text|>", "<bos>", "<s>"} {
				want = strings.TrimPrefix(want, bos)
			}
			var sb strings.Builder
			if err := gt.Execute(&sb, map[string]any{"Messages": conv}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := sb.String(); got != strings.TrimLeft(want, " ") {
				t.Errorf("%s, %d messages:\nollama %q\nHF     %q", name, len(conv), got, want)
			}
		}
	}
}

// TestModelfile: FROM, a TEMPLATE for the model's Llama-3-style template
// and the end-of-turn token as a stop parameter.
func TestModelfile(t *testing.T) {
	dir, _ := writeFolder(t, "")
	text, note, err := Modelfile(dir, "./m.gguf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM ./m.gguf\n", "TEMPLATE \"\"\"", "<|start_header_id|>", "PARAMETER stop \"" + tokenize.TrainedEOT + "\""} {
		if !strings.Contains(text, want) {
			t.Errorf("Modelfile lacks %q:\n%s", want, text)
		}
	}
	if note != "" {
		t.Errorf("note %q for a plain Llama-3 template", note)
	}
}

// FuzzTokenizerParts feeds hostile JSON to the tokenizer.json readers the
// exporter adds: they return errors, never panic.
func FuzzTokenizerParts(f *testing.F) {
	f.Add([]byte(`{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"x"}},{"type":"ByteLevel"}]}`))
	f.Add([]byte(`{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`))
	f.Add([]byte(`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"pair":[{"Sequence":{"id":"A"}},{"SpecialToken":{"id":"</s>"}},{"Sequence":{"id":"B"}}]}`))
	f.Add([]byte(`["a b", ["c", "d"]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bpePreName(b)
		spaceInfo(b, b)
		pairSeparator(b, "</s>")
		var raw []json.RawMessage
		if json.Unmarshal(b, &raw) == nil {
			parseMerges(raw)
		}
	})
}
