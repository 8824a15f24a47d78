// Command trainstep times one full training step of a tiny Llama (vocab
// 32,000, hidden 256, 4 layers, 8 heads, 2 KV heads, MLP 688, sequence 256,
// batch 4; forward, cross-entropy, backward, clipping at 1.0, AdamW) through
// pltune's trainer, side by side with the same step in PyTorch eager on the
// same libtorch (step.py, /usr/bin/python3), each side in its own process
// with the same thread count, and reports the median step times, their
// ratio and each process's peak RSS. The sides take turns, round by round,
// so a change in the machine's load hits both:
//
//	go run ./bench/trainstep [-steps 5] [-rounds 3] [-threads N]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/pltune/pltune/internal/benchutil"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
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

// result is what one side's process prints.
type result struct {
	TimesS    []float64 `json:"times_s"`
	PeakRSSKB int       `json:"peak_rss_kb"`
}

func main() {
	s := sizes{Vocab: 32000, Hidden: 256, Layers: 4, Heads: 8, KVHeads: 2, MLP: 688, Batch: 4, Seq: 256, Warmup: 1}
	flag.IntVar(&s.Steps, "steps", 5, "timed steps per round and side (after one warm-up step)")
	rounds := flag.Int("rounds", 3, "rounds; each times both sides")
	flag.IntVar(&s.Threads, "threads", runtime.NumCPU(), "libtorch intra-op threads, for both sides")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-torch")
	worker := flag.String("worker", "", "internal: run pltune's side with these sizes (JSON)")
	flag.Parse()
	var err error
	if *worker != "" {
		err = work(*worker)
	} else {
		err = compare(s, *rounds, *python)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/trainstep:", err)
		os.Exit(1)
	}
}

func compare(s sizes, rounds int, python string) error {
	args, _ := json.Marshal(s)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "step.py")
	var goTimes, pyTimes []float64
	var goRSS, pyRSS int
	for r := range rounds {
		for _, side := range []string{"pltune", "pytorch"} {
			cmd := exec.Command(self, "-worker", string(args))
			if side == "pytorch" {
				cmd = exec.Command(python, script, string(args))
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s side: %w", side, err)
			}
			var res result
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
				return fmt.Errorf("%s side printed %q: %w", side, out.String(), err)
			}
			fmt.Printf("round %d %-8s step %s  peak RSS %d MB\n", r+1, side, benchutil.FormatTimes(res.TimesS), res.PeakRSSKB/1024)
			if side == "pltune" {
				goTimes, goRSS = append(goTimes, res.TimesS...), max(goRSS, res.PeakRSSKB)
			} else {
				pyTimes, pyRSS = append(pyTimes, res.TimesS...), max(pyRSS, res.PeakRSSKB)
			}
		}
	}
	g, p := benchutil.Median(goTimes), benchutil.Median(pyTimes)
	fmt.Printf("\ntiny Llama training step (B %d, T %d, %d threads), medians over %d steps each:\n", s.Batch, s.Seq, s.Threads, len(goTimes))
	fmt.Printf("  pltune  %.3f s   peak RSS %d MB\n  PyTorch %.3f s   peak RSS %d MB\n", g, goRSS/1024, p, pyRSS/1024)
	fmt.Printf("  time ratio pltune/PyTorch %.2f   peak RSS ratio %.2f\n", g/p, float64(goRSS)/float64(pyRSS))
	return nil
}

// work runs pltune's side: the trainer, for Warmup+Steps optimizer steps.
func work(arg string) error {
	var s sizes
	if err := json.Unmarshal([]byte(arg), &s); err != nil {
		return err
	}
	torchx.SetNumThreads(s.Threads)
	cfg, err := train.ParseConfig(fmt.Appendf(nil, `{"architectures":["LlamaForCausalLM"],"vocab_size":%d,"hidden_size":%d,
		"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,
		"rms_norm_eps":1e-5,"rope_theta":500000,"max_position_embeddings":%d}`, s.Vocab, s.Hidden, s.MLP, s.Layers, s.Heads, s.KVHeads, s.Seq))
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	n := s.Warmup + s.Steps
	rows := benchutil.RandomLMRows(r, s.Batch*n, s.Seq, s.Vocab)
	dir, err := os.MkdirTemp("", "pltune-trainstep")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tc := train.DefaultTrainerConfig()
	tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.NoFinalCheckpoint = dir, n, s.Batch, true
	tc.Epochs, tc.WarmupRatio = 1, 0
	steps := benchutil.NewStepTimes(s.Warmup)
	tc.OnStep = func(rec train.StepRecord) { steps.Observe(rec.Step) }
	tr, err := train.NewTrainer(tc, m.NamedParameters(), train.NewLMObjective(m, rows, 0), nil)
	if err != nil {
		return err
	}
	if _, err := tr.Run(context.Background()); err != nil {
		return err
	}
	out, _ := json.Marshal(result{TimesS: steps.Times, PeakRSSKB: benchutil.PeakRSSKB()})
	fmt.Println(string(out))
	return nil
}
