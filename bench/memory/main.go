// Command memory measures peak resident memory and step time of one
// training step of the tiny Llama (vocab 32,000, hidden 256, 4 layers, 8
// heads, 2 KV heads, MLP 688, batch 1, CPU) at several sequence lengths,
// through pltune's trainer and through PyTorch eager on the same libtorch
// (step.py, /usr/bin/python3 with Debian's python3-torch), with and
// without activation checkpointing (pltune's --gradient-checkpointing;
// torch.utils.checkpoint per layer), full fine-tuning and LoRA (rank 16,
// alpha 32, dropout 0, on q/k/v/o). Every configuration runs in its own
// process, one at a time (each child under `flock LOCK` when -lock is
// given, so that no other heavy process shares the machine), and reports
// its peak RSS (VmHWM) and the wall and CPU time (user + system, all
// threads: less affected by other load on a shared machine) of its last
// step (after -warmup steps; none at lengths above -warmup-max):
//
//	go run ./bench/memory [-seq 1024,4096,8192,16384] [-skip PATTERNS] [-lock /tmp/heavy.lock] [-nolock PATTERNS]
//
// A configuration is named side/checkpointing/tuning/length, e.g.
// pytorch/plain/full/16384; -skip takes comma-separated path.Match
// patterns of configurations not to run (those that cannot fit).
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
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pltune/pltune/internal/benchutil"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
)

type config struct {
	Vocab      int     `json:"vocab"`
	Hidden     int     `json:"hidden"`
	Layers     int     `json:"layers"`
	Heads      int     `json:"heads"`
	KVHeads    int     `json:"kv_heads"`
	MLP        int     `json:"mlp"`
	Seq        int     `json:"seq"`
	Warmup     int     `json:"warmup"`
	Threads    int     `json:"threads"`
	Checkpoint bool    `json:"checkpoint"`
	LoRARank   int     `json:"lora_rank"`
	LoRAAlpha  float64 `json:"lora_alpha"`
}

type result struct {
	StepS     float64 `json:"step_s"`
	CPUS      float64 `json:"cpu_s"` // process CPU time (all threads) of the step
	PeakRSSKB int     `json:"peak_rss_kb"`
}

func main() {
	base := config{Vocab: 32000, Hidden: 256, Layers: 4, Heads: 8, KVHeads: 2, MLP: 688, LoRAAlpha: 32}
	seqs := flag.String("seq", "1024,4096,8192,16384", "sequence lengths")
	skip := flag.String("skip", "", "comma-separated path.Match patterns of side/checkpointing/tuning/length not to run")
	warmup := flag.Int("warmup", 1, "untimed steps before the timed one")
	warmupMax := flag.Int("warmup-max", 8192, "no warm-up step above this length (the timed step is the first)")
	lock := flag.String("lock", "", "run each child under `flock` on this file")
	nolock := flag.String("nolock", "", "comma-separated patterns of configurations that run without -lock (known to stay small)")
	flag.IntVar(&base.Threads, "threads", runtime.NumCPU(), "libtorch intra-op threads, for both sides")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-torch")
	worker := flag.String("worker", "", "internal: run pltune's side with this configuration (JSON)")
	flag.Parse()
	if *worker != "" {
		if err := work(*worker); err != nil {
			fmt.Fprintln(os.Stderr, "bench/memory:", err)
			os.Exit(1)
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "step.py")
	fmt.Println("| side | checkpointing | tuning | tokens | peak RSS | step (wall) | step (CPU) |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|")
	for _, f := range strings.Split(*seqs, ",") {
		T, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad -seq:", err)
			os.Exit(2)
		}
		for _, side := range []string{"pltune", "pytorch"} {
			for _, ck := range []bool{false, true} {
				for _, lora := range []bool{false, true} {
					c := base
					c.Seq, c.Checkpoint = T, ck
					if T <= *warmupMax {
						c.Warmup = *warmup
					}
					if lora {
						c.LoRARank = 16
					}
					name := fmt.Sprintf("%s/%s/%s/%d", side, map[bool]string{false: "plain", true: "checkpoint"}[ck], map[bool]string{false: "full", true: "lora"}[lora], T)
					if skipped(name, *skip) {
						fmt.Printf("| %s | %s | %s | %d | not run | |\n", side, on(ck), map[bool]string{false: "full", true: "LoRA"}[lora], T)
						continue
					}
					args, _ := json.Marshal(c)
					cmd := []string{self, "-worker", string(args)}
					if side == "pytorch" {
						cmd = []string{*python, script, string(args)}
					}
					if *lock != "" && !skipped(name, *nolock) {
						cmd = append([]string{"flock", *lock}, cmd...)
					}
					res, err := runChild(cmd)
					cell := ""
					if err != nil {
						cell = "failed: " + err.Error()
						fmt.Printf("| %s | %s | %s | %d | %s | |\n", side, on(ck), map[bool]string{false: "full", true: "LoRA"}[lora], T, cell)
						continue
					}
					fmt.Printf("| %s | %s | %s | %d | %.2f GB | %.2f s | %.2f s |\n", side, on(ck), map[bool]string{false: "full", true: "LoRA"}[lora], T, float64(res.PeakRSSKB)/1e6, res.StepS, res.CPUS)
				}
			}
		}
	}
}

func on(b bool) string {
	if b {
		return "per layer"
	}
	return "off"
}

func skipped(name, patterns string) bool {
	for _, p := range strings.Split(patterns, ",") {
		if ok, _ := path.Match(strings.TrimSpace(p), name); ok && p != "" {
			return true
		}
	}
	return false
}

func runChild(argv []string) (*result, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		return nil, fmt.Errorf("%v %s", err, msg)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return nil, fmt.Errorf("child printed %q: %w", out.String(), err)
	}
	return &res, nil
}

// work runs pltune's side: Warmup+1 optimizer steps of the trainer on one
// row of Seq random tokens.
func work(arg string) error {
	var c config
	if err := json.Unmarshal([]byte(arg), &c); err != nil {
		return err
	}
	torchx.SetNumThreads(c.Threads)
	cfg, err := train.ParseConfig(fmt.Appendf(nil, `{"architectures":["LlamaForCausalLM"],"vocab_size":%d,"hidden_size":%d,
		"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,
		"rms_norm_eps":1e-5,"rope_theta":500000,"max_position_embeddings":%d}`, c.Vocab, c.Hidden, c.MLP, c.Layers, c.Heads, c.KVHeads, c.Seq))
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1, GradientCheckpointing: c.Checkpoint})
	if err != nil {
		return err
	}
	if c.LoRARank > 0 {
		if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: c.LoRARank, Alpha: c.LoRAAlpha, TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}); err != nil {
			return err
		}
	}
	m.SetTraining(true)
	r := rand.New(rand.NewPCG(1, 2))
	n := c.Warmup + 1
	rows := benchutil.RandomLMRows(r, n, c.Seq, c.Vocab)
	dir, err := os.MkdirTemp("", "pltune-memory")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tc := train.DefaultTrainerConfig()
	tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.NoFinalCheckpoint = dir, n, 1, true
	tc.Epochs, tc.WarmupRatio = 1, 0
	var step, cpu float64
	last, lastCPU := time.Now(), cpuSeconds()
	tc.OnStep = func(train.StepRecord) {
		now, c := time.Now(), cpuSeconds()
		step, cpu = now.Sub(last).Seconds(), c-lastCPU
		last, lastCPU = now, c
	}
	tr, err := train.NewTrainer(tc, m.NamedParameters(), train.NewLMObjective(m, rows, 0), nil)
	if err != nil {
		return err
	}
	if _, err := tr.Run(context.Background()); err != nil {
		return err
	}
	out, _ := json.Marshal(result{StepS: step, CPUS: cpu, PeakRSSKB: benchutil.PeakRSSKB()})
	fmt.Println(string(out))
	return nil
}

// cpuSeconds is the process's user + system time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
