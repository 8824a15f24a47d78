package train

import (
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
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch/ts"
)

// hfRelTol is the parity bound against transformers: the largest logit
// difference relative to the largest reference logit.
const hfRelTol = 1e-5

var polishTexts = []string{
	"Wczoraj w Krakowie padał deszcz, więc zostaliśmy w domu i czytaliśmy książki.",
	"Źródłem błędu okazała się źle ustawiona strefa czasowa serwera.",
	"Proszę podać trzy przykłady polskich rzek oraz miasta, przez które przepływają.",
}

// hfRequest is what train/testdata/hfparity/hf.py reads.
type hfRequest struct {
	Dir             string      `json:"dir"`
	Vocab           int         `json:"vocab"`
	Batch           [][]int64   `json:"batch"`
	Packed          []int64     `json:"packed"`
	PackedPositions []int64     `json:"packed_positions"`
	Checkpoints     []string    `json:"checkpoints,omitempty"`
	Adapters        [][2]string `json:"adapters,omitempty"`
	packedSegments  []int64
}

func runHF(t *testing.T, py, cmd string, req *hfRequest) {
	t.Helper()
	js, _ := json.Marshal(req)
	path := filepath.Join(req.Dir, cmd+".json")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(py, filepath.Join("testdata", "hfparity", "hf.py"), cmd, path)
	c.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error", "TQDM_DISABLE=1")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("hf.py %s: %v\n%s", cmd, err, out)
	}
}

// polishRequest tokenizes the Polish texts with Mistral's tokenizer: two
// rows cut to one length, and all three packed into one row.
func polishRequest(t *testing.T) *hfRequest {
	t.Helper()
	dir, err := pyref.TokenizerDir("llama2")
	if err != nil {
		t.Skip(err)
	}
	tok, err := tokenize.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	req := &hfRequest{Dir: t.TempDir(), Vocab: tok.VocabSize()}
	var enc [][]int64
	for _, s := range polishTexts {
		var ids []int64
		for _, id := range tok.Encode(s, true) {
			ids = append(ids, int64(id))
		}
		enc = append(enc, ids)
	}
	n := min(len(enc[0]), len(enc[1]))
	if n < 16 {
		t.Fatalf("Polish rows of %d tokens; the sliding window needs more", n)
	}
	req.Batch = [][]int64{enc[0][:n], enc[1][:n]}
	for seg, ids := range enc {
		for i, id := range ids {
			req.Packed = append(req.Packed, id)
			req.PackedPositions = append(req.PackedPositions, int64(i))
			req.packedSegments = append(req.packedSegments, int64(seg+1))
		}
	}
	return req
}

type hfLogits map[string][]float32

func readLogits(t *testing.T, path string) hfLogits {
	t.Helper()
	f, err := safetensors.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := hfLogits{}
	for _, n := range f.Names() {
		if out[n], err = f.ReadFloat32(n); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// pltuneLogits runs m on the request's batch and packed row (positions
// and segments as pltune's packing makes them).
func pltuneLogits(t *testing.T, m *Model, req *hfRequest) hfLogits {
	t.Helper()
	out := hfLogits{}
	torchx.NoGrad(func() {
		var flat []int64
		for _, r := range req.Batch {
			flat = append(flat, r...)
		}
		in := ts.MustOfSlice(flat).MustView([]int64{int64(len(req.Batch)), int64(len(req.Batch[0]))}, true)
		o, err := m.Forward(in, ForwardOptions{})
		in.MustDrop()
		if err != nil {
			t.Fatal(err)
		}
		out["batch"] = values(o.Logits)
		o.Drop()
		row := func(v []int64) *ts.Tensor { return ts.MustOfSlice(v).MustView([]int64{1, int64(len(v))}, true) }
		in, pos, seg := row(req.Packed), row(req.PackedPositions), row(req.packedSegments)
		o, err = m.Forward(in, ForwardOptions{PositionIDs: pos, SegmentIDs: seg})
		in.MustDrop()
		pos.MustDrop()
		seg.MustDrop()
		if err != nil {
			t.Fatal(err)
		}
		out["packed"] = values(o.Logits)
		o.Drop()
	})
	return out
}

// relDiff is max |got − want| / max |want|.
func relDiff(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, s float64
	for i := range got {
		d = max(d, math.Abs(float64(got[i]-want[i])))
		s = max(s, math.Abs(float64(want[i])))
	}
	return d / s
}

func compareLogits(t *testing.T, what string, got hfLogits, want hfLogits, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if d := relDiff(got[k], want[k]); d > hfRelTol {
			t.Errorf("%s, %s: logits differ by %.3g relative (bound %g)", what, k, d, hfRelTol)
		} else {
			t.Logf("%s, %s: relative difference %.2g", what, k, d)
		}
	}
}

// TestTransformersParity checks pltune against transformers and PEFT
// themselves: Llama (llama3 rope scaling), Mistral (explicit head_dim,
// sliding window) and Mixtral models that transformers created and saved
// give the same logits in pltune on Polish text, plain and packed
// (transformers given the restarting position ids, finding the packed
// sequences with its own masks); a PEFT LoRA adapter loads in pltune with
// the same logits and merges as merge_and_unload does; checkpoints and
// adapters pltune writes load in transformers and PEFT with pltune's logits.
func TestTransformersParity(t *testing.T) {
	py := pyref.Require(t)
	req := polishRequest(t)
	runHF(t, py, "make", req)
	models := map[string]*Model{}
	for _, name := range []string{"llama", "mistral", "mixtral"} {
		m, err := LoadModel(filepath.Join(req.Dir, name), ModelOptions{})
		if err != nil {
			t.Fatalf("%s saved by transformers: %v", name, err)
		}
		t.Cleanup(m.Drop)
		models[name] = m
		compareLogits(t, name, pltuneLogits(t, m, req), readLogits(t, filepath.Join(req.Dir, name, "logits.safetensors")), "batch", "packed")
	}
	checkRouterAuxLoss(t, models["mixtral"], req, readLogits(t, filepath.Join(req.Dir, "mixtral", "router.safetensors")))
	if c := models["mistral"].Config; c.HeadDim != 24 || c.SlidingWindow != 8 {
		t.Errorf("mistral config read as head_dim %d, sliding_window %d", c.HeadDim, c.SlidingWindow)
	}
	if c := models["llama"].Config; c.RopeScaling == nil || c.RopeTheta != 500000 {
		t.Errorf("llama config read as rope_theta %g, scaling %+v", c.RopeTheta, c.RopeScaling)
	}

	// PEFT's adapter in pltune, then merged.
	peft := readLogits(t, filepath.Join(req.Dir, "llama-peft", "logits.safetensors"))
	llama := models["llama"]
	if err := LoadAdapter(llama, filepath.Join(req.Dir, "llama-peft")); err != nil {
		t.Fatalf("PEFT's adapter: %v", err)
	}
	compareLogits(t, "PEFT adapter in pltune", pltuneLogits(t, llama, req), peft, "batch", "packed")
	if err := llama.MergeLoRA(); err != nil {
		t.Fatal(err)
	}
	merged := pltuneLogits(t, llama, req)
	compareLogits(t, "pltune MergeLoRA vs merge_and_unload", hfLogits{"merged_batch": merged["batch"], "merged_packed": merged["packed"]}, peft, "merged_batch", "merged_packed")

	// What pltune writes, read by transformers and PEFT: the merged Llama,
	// Mistral and Mixtral as checkpoints, a fresh pltune adapter on Mistral.
	want := map[string]hfLogits{"pl-llama": merged}
	for _, name := range []string{"pl-llama", "pl-mistral", "pl-mixtral"} {
		src := models[name[3:]]
		if err := src.Save(filepath.Join(req.Dir, name), SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		if want[name] == nil {
			want[name] = pltuneLogits(t, src, req)
		}
		req.Checkpoints = append(req.Checkpoints, name)
	}
	mistral := models["mistral"]
	if err := ApplyLoRA(mistral, LoRAConfig{Rank: 4, Alpha: 16, TargetModules: []string{"q_proj", "v_proj", "down_proj"}}); err != nil {
		t.Fatal(err)
	}
	perturbAdapters(mistral)
	if err := mistral.SaveAdapter(filepath.Join(req.Dir, "pl-mistral-lora"), "pl-mistral"); err != nil {
		t.Fatal(err)
	}
	want["pl-mistral-lora"] = pltuneLogits(t, mistral, req)
	req.Adapters = [][2]string{{"pl-mistral", "pl-mistral-lora"}}
	runHF(t, py, "check", req)
	for name, w := range want {
		got := readLogits(t, filepath.Join(req.Dir, name, "hf_logits.safetensors"))
		compareLogits(t, fmt.Sprintf("%s in transformers", name), w, got, "batch", "packed")
	}
}
