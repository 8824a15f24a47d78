// Command train benchmarks forward + backward of a tiny Llama (vocab 32,000,
// hidden 256, 4 layers, 8 heads, 2 KV heads, MLP 688, sequence 256, batch 4)
// in pltune against the same model in PyTorch eager on the same libtorch
// (ref.py, run with /usr/bin/python3) with the same thread count. The two
// sides alternate step by step, so a change in the machine's load hits both;
// it prints the median wall and CPU time per step of each and their ratios:
//
//	go run ./bench/train [-steps 6] [-threads N]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
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
	Warmup  int `json:"warmup"`
	Threads int `json:"threads"`
}

func main() {
	s := sizes{Vocab: 32000, Hidden: 256, Layers: 4, Heads: 8, KVHeads: 2, MLP: 688, Batch: 4, Seq: 256, Warmup: 1}
	steps := flag.Int("steps", 6, "timed steps per side (after one warm-up step each)")
	flag.IntVar(&s.Threads, "threads", runtime.NumCPU(), "libtorch intra-op threads, for both sides")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-torch")
	flag.Parse()
	if err := run(s, *steps, *python); err != nil {
		fmt.Fprintln(os.Stderr, "bench/train:", err)
		os.Exit(1)
	}
}

type timing struct {
	Wall float64 `json:"wall_s"`
	CPU  float64 `json:"cpu_s"`
}

func run(s sizes, steps int, python string) error {
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

	arg, _ := json.Marshal(s)
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command(python, filepath.Join(filepath.Dir(self), "ref.py"), string(arg))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("PyTorch reference: %w", err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	var ready struct {
		Threads int `json:"threads"`
	}
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &ready) != nil {
		return fmt.Errorf("PyTorch reference did not start: %q %v", lines.Text(), lines.Err())
	}

	for range s.Warmup {
		if _, err := goStep(m, params, ids, tgt); err != nil {
			return err
		}
	}
	var goT, pyT []timing
	for range steps {
		g, err := goStep(m, params, ids, tgt)
		if err != nil {
			return err
		}
		goT = append(goT, g)
		fmt.Fprintln(stdin, "step")
		var p timing
		if !lines.Scan() || json.Unmarshal(lines.Bytes(), &p) != nil {
			return fmt.Errorf("PyTorch reference step: %q %v", lines.Text(), lines.Err())
		}
		pyT = append(pyT, p)
	}
	gw, gc := medians(goT)
	pw, pc := medians(pyT)
	fmt.Printf("tiny Llama forward+backward (V %d, D %d, %d layers, %d/%d heads, MLP %d, batch %d × seq %d), threads %d/%d, %d alternating steps\n",
		s.Vocab, s.Hidden, s.Layers, s.Heads, s.KVHeads, s.MLP, s.Batch, s.Seq, torchx.NumThreads(), ready.Threads, steps)
	fmt.Printf("pltune (gotch):  median wall %.3f s/step, CPU %.3f s/step\n", gw, gc)
	fmt.Printf("PyTorch eager:   median wall %.3f s/step, CPU %.3f s/step\n", pw, pc)
	fmt.Printf("ratio pltune / PyTorch: wall %.2f, CPU %.2f\n", gw/pw, gc/pc)
	return nil
}

func medians(xs []timing) (wall, cpu float64) {
	w := make([]float64, len(xs))
	c := make([]float64, len(xs))
	for i, t := range xs {
		w[i], c[i] = t.Wall, t.CPU
	}
	slices.Sort(w)
	slices.Sort(c)
	return w[len(w)/2], c[len(c)/2]
}

func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// goStep runs one forward + backward and zeroes the gradients (the
// reference sets them to None: either way the next backward starts clean).
func goStep(m *train.Model, params []train.Param, ids, tgt *ts.Tensor) (timing, error) {
	t0, c0 := time.Now(), cpuTime()
	out, err := m.Forward(ids, train.ForwardOptions{})
	if err != nil {
		return timing{}, err
	}
	lp := train.TokenLogProbs(out.Logits, tgt)
	loss := lp.MustMean(lp.DType(), true).MustNeg(true)
	loss.MustBackward()
	loss.MustDrop()
	out.Drop()
	for _, p := range params {
		g := p.T.MustGrad(false)
		if g.MustDefined() {
			g.MustZero_()
		}
		g.MustDrop()
	}
	return timing{time.Since(t0).Seconds(), cpuTime() - c0}, nil
}
