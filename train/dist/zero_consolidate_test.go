package dist_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch/ts"
)

// consolidateCheck loads a consolidated folder (a full model, or base +
// adapter) in transformers (and PEFT) and prints the logits of ids.
const consolidateCheck = `
import json, sys, torch
from transformers import AutoModelForCausalLM
req = json.load(open(sys.argv[1]))
if req.get("adapter"):
    from peft import PeftModel
    m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(req["base"], torch_dtype=torch.float32), req["adapter"])
else:
    m = AutoModelForCausalLM.from_pretrained(req["model"], torch_dtype=torch.float32)
m.eval()
with torch.no_grad():
    print(json.dumps(m(torch.tensor([req["ids"]])).logits[0].flatten().tolist()))
`

// TestZeroConsolidate: a 2-rank ZeRO run's last checkpoint, consolidated
// by train.ConsolidateZeroCheckpoint (stage 3 from the ranks' shard files,
// stage 1 from the parameters file; full models split into small shards
// plus an index, LoRA as a PEFT adapter), holds the weights of the same
// training in one unsharded process, and transformers (with PEFT) loads it
// and gives that process's logits.
func TestZeroConsolidate(t *testing.T) {
	requireGloo(t)
	torchx.SetGradEnabled(true)
	for _, c := range []struct {
		stage int
		lora  bool
	}{{3, false}, {3, true}, {1, false}} {
		t.Run("stage"+strconv.Itoa(c.stage)+map[bool]string{true: "/lora", false: "/full"}[c.lora], func(t *testing.T) {
			m, o, err := zeroSetup(1, "lm", c.lora, zeroCheckpointing(c.stage, c.lora))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Drop()
			tr, err := train.NewTrainer(zeroConfig(t.TempDir(), 4), m.NamedParameters(), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			j := job{Mode: "zero", Batch: 2, Zero: c.stage, Obj: "lm", LoRA: c.lora, Out: t.TempDir()}
			runGroup(t, j)
			cks, _ := filepath.Glob(filepath.Join(j.Out, "checkpoint-*"))
			slices.SortFunc(cks, func(a, b string) int {
				x, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(a), "checkpoint-"))
				y, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(b), "checkpoint-"))
				return x - y
			})
			if len(cks) == 0 {
				t.Fatal("the run wrote no checkpoint")
			}
			out := t.TempDir()
			calls := 0
			opts := train.ConsolidateOptions{Progress: func(done, total int) { calls++ }}
			if !c.lora {
				opts.MaxShardBytes = 8_000 // several shards (of the 23 kB model) and an index
			}
			if err := train.ConsolidateZeroCheckpoint(context.Background(), cks[len(cks)-1], out, opts); err != nil {
				t.Fatal(err)
			}
			if calls == 0 {
				t.Error("no progress reported")
			}
			file, prefix := "", ""
			if c.lora {
				file, prefix = "adapter_model.safetensors", "base_model.model."
			} else if _, err := os.Stat(filepath.Join(out, safetensors.IndexFile)); err != nil {
				t.Fatalf("no index for a model over MaxShardBytes: %v", err)
			}
			set, err := safetensors.OpenDir(out)
			if file != "" {
				var f *safetensors.File
				f, err = safetensors.OpenFile(filepath.Join(out, file))
				if err == nil {
					set = safetensors.NewSet(f)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			d := 0.0
			for _, p := range m.NamedParameters() {
				if !p.Trainable {
					continue
				}
				got, err := set.ReadFloat32(prefix + p.Name)
				if err != nil {
					t.Fatal(err)
				}
				want := p.T.Float64Values()
				for i := range want {
					d = math.Max(d, math.Abs(float64(got[i])-want[i]))
				}
			}
			if d > 1e-5 {
				t.Errorf("consolidated weights: max |Δw| = %.3g against one unsharded process, want ≤ 1e-5", d)
			}
			t.Logf("consolidated weights: max |Δw| = %.3g", d)

			py := pyref.Require(t)
			ids := []int64{1, 5, 9, 17, 33, 60, 2, 40}
			req := map[string]any{"ids": ids, "model": out}
			if c.lora {
				base := t.TempDir()
				if err := m.Save(base, train.SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				req = map[string]any{"ids": ids, "base": base, "adapter": out}
			}
			dir := t.TempDir()
			js, _ := json.Marshal(req)
			if err := os.WriteFile(filepath.Join(dir, "req.json"), js, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "check.py"), []byte(consolidateCheck), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(py, filepath.Join(dir, "check.py"), filepath.Join(dir, "req.json"))
			cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error")
			b, err := cmd.Output()
			if err != nil {
				t.Fatalf("transformers: %v\n%s", err, b)
			}
			var hf []float64
			if err := json.Unmarshal(b, &hf); err != nil {
				t.Fatalf("transformers output: %v", err)
			}
			m.SetTraining(false)
			in := ts.MustOfSlice(ids).MustView([]int64{1, int64(len(ids))}, true)
			defer in.MustDrop()
			var ours []float64
			torchx.NoGrad(func() {
				res, err := m.Forward(in, train.ForwardOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ours = res.Logits.Float64Values()
				res.Logits.MustDrop()
			})
			if len(ours) != len(hf) {
				t.Fatalf("%d logits from transformers, %d from the unsharded model", len(hf), len(ours))
			}
			dl, top := 0.0, 0.0
			for i := range ours {
				dl, top = math.Max(dl, math.Abs(ours[i]-hf[i])), math.Max(top, math.Abs(ours[i]))
			}
			if dl > 1e-4*top {
				t.Errorf("transformers' logits from the consolidated folder differ by %.3g (largest logit %.3g)", dl, top)
			}
		})
	}
}

// TestZeroShardedLoad: ranks that load a Hugging Face folder with
// train.LoadModelSharded (each reading only its pieces of every tensor)
// train under stage 3 to the weights of one unsharded process that loaded
// it whole with train.LoadModel.
func TestZeroShardedLoad(t *testing.T) {
	requireGloo(t)
	torchx.SetGradEnabled(true)
	m, _, err := zeroSetup(1, "lm", false, true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = m.Save(dir, train.SaveOptions{})
	m.Drop()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := train.LoadModel(dir, train.ModelOptions{GradientCheckpointing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Drop()
	ref.SetTraining(true)
	start := llamaWeights(ref)
	tr, err := train.NewTrainer(zeroConfig(t.TempDir(), 4), ref.NamedParameters(), tinyLlamaRows(ref), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := llamaWeights(ref)
	got := runGroup(t, job{Mode: "zero", Batch: 2, Zero: 3, Obj: "lm", Out: t.TempDir(), Load: dir})[0]
	if d := maxAbsDiff(got, want); d > 1e-5 {
		t.Errorf("max |Δw| = %.3g against one process that loaded the folder whole, want ≤ 1e-5 (training moved them by %.3g)", d, maxAbsDiff(want, start))
	}
}
