// Command train benchmarks forward + backward of a tiny Llama (vocab 32,000,
// hidden 256, 4 layers, 8 heads, 2 KV heads, MLP 688, sequence 256, batch 4)
// in pltune against the same model in PyTorch eager on the same libtorch
// (ref.py, run with /usr/bin/python3), with the same thread count, and
// prints both medians and their ratio. The two sides take turns (rounds), so
// a change in the machine's load hits both:
//
//	go run ./bench/train [-steps 3] [-rounds 2] [-threads N]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type sizes struct {
	Vocab   int `json:"vocab"`
	Hidden  int `json:"hidden"`
	Layers  int `json:"layers"`
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	MLP     int `json:"mlp"`
	Batch   int `json:"batch"`
	Seq     int `json:"seq"`
	Steps   int `json:"steps"`
	Warmup  int `json:"warmup"`
	Threads int `json:"threads"`
}

func main() {
	s := sizes{Vocab: 32000, Hidden: 256, Layers: 4, Heads: 8, KVHeads: 2, MLP: 688, Batch: 4, Seq: 256, Warmup: 1}
	flag.IntVar(&s.Steps, "steps", 3, "timed steps per round and side (after one warm-up step)")
	rounds := flag.Int("rounds", 2, "rounds; each times both sides")
	flag.IntVar(&s.Threads, "threads", runtime.NumCPU(), "libtorch intra-op threads, for both sides")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-torch")
	flag.Parse()
	if err := run(s, *rounds, *python); err != nil {
		fmt.Fprintln(os.Stderr, "bench/train:", err)
		os.Exit(1)
	}
}

func run(s sizes, rounds int, python string) error {
	runtime.LockOSThread()
	torchx.SetNumThreads(s.Threads)
	cfgJSON := fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"vocab_size":%d,"hidden_size":%d,"intermediate_size":%d,
		"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,"rms_norm_eps":1e-5,"rope_theta":500000}`,
		s.Vocab, s.Hidden, s.MLP, s.Layers, s.Heads, s.KVHeads)
	cfg, err := train.ParseConfig([]byte(cfgJSON))
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		return err
	}
	defer m.Drop()
	torchx.ManualSeed(2)
	ids := ts.MustRandint(int64(s.Vocab), []int64{int64(s.Batch), int64(s.Seq)}, gotch.Int64, gotch.CPU)
	tgt := ts.MustRandint(int64(s.Vocab), []int64{int64(s.Batch), int64(s.Seq)}, gotch.Int64, gotch.CPU)
	params := m.NamedParameters()
	var goTimes, pyTimes []float64
	var pyThreads int
	for range rounds {
		t, err := timeGo(m, params, ids, tgt, s)
		if err != nil {
			return err
		}
		goTimes = append(goTimes, t...)
		t, pyThreads, err = timePython(python, s)
		if err != nil {
			return err
		}
		pyTimes = append(pyTimes, t...)
	}
	goMed, pyMed := median(goTimes), median(pyTimes)
	fmt.Printf("tiny Llama forward+backward (V %d, D %d, %d layers, %d/%d heads, MLP %d, batch %d × seq %d), threads %d/%d\n",
		s.Vocab, s.Hidden, s.Layers, s.Heads, s.KVHeads, s.MLP, s.Batch, s.Seq, torchx.NumThreads(), pyThreads)
	fmt.Printf("pltune (gotch):  median %.3f s/step over %d steps\n", goMed, len(goTimes))
	fmt.Printf("PyTorch eager:   median %.3f s/step over %d steps\n", pyMed, len(pyTimes))
	fmt.Printf("ratio pltune / PyTorch: %.2f\n", goMed/pyMed)
	return nil
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

func timeGo(m *train.Model, params []train.Param, ids, tgt *ts.Tensor, s sizes) ([]float64, error) {
	var times []float64
	for i := range s.Warmup + s.Steps {
		t0 := time.Now()
		out, err := m.Forward(ids, train.ForwardOptions{})
		if err != nil {
			return nil, err
		}
		lp := train.TokenLogProbs(out.Logits, tgt)
		loss := lp.MustMean(lp.DType(), true).MustNeg(true)
		loss.MustBackward()
		loss.MustDrop()
		out.Drop()
		for _, p := range params {
			// Zero the gradients (the reference sets them to None):
			// either way the next backward starts clean.
			g := p.T.MustGrad(false)
			if g.MustDefined() {
				g.MustZero_()
			}
			g.MustDrop()
		}
		if i >= s.Warmup {
			times = append(times, time.Since(t0).Seconds())
		}
	}
	return times, nil
}

func timePython(python string, s sizes) ([]float64, int, error) {
	arg, _ := json.Marshal(s)
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command(python, filepath.Join(filepath.Dir(self), "ref.py"), string(arg))
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, 0, fmt.Errorf("PyTorch reference: %w", err)
	}
	var ref struct {
		Times   []float64 `json:"times_s"`
		Threads int       `json:"threads"`
	}
	if err := json.Unmarshal(outb, &ref); err != nil {
		return nil, 0, fmt.Errorf("PyTorch reference output %q: %w", outb, err)
	}
	return ref.Times, ref.Threads, nil
}
