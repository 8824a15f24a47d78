//go:build pltune_torch

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/pltune/pltune/train"
)

func init() {
	register(&command{name: "score", summary: "log-probability of each input text under a model", run: runScore})
	register(&command{name: "generate", summary: "continue each input prompt with a model", run: runGenerate})
}

// modelBatch is how many input lines score and generate process per model
// call: enough to batch, few enough that output keeps flowing.
const modelBatch = 8

// open loads the model with its tokenizer.
func (f *modelFlags) open() (*train.Pretrained, error) {
	opts, err := deviceOptions(f.device, f.dtype, train.ModelOptions{})
	if err != nil {
		return nil, err
	}
	return train.Open(f.model, train.OpenOptions{ModelOptions: opts, Base: f.base, Tokenizer: f.tokenizer})
}

// readJSONStrings calls fn with batches of the JSON strings read one per
// line from r. A line that is not a JSON string stops the reading with an
// error naming the line.
func readJSONStrings(r io.Reader, fn func(texts []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var batch []string
	line := 0
	for sc.Scan() {
		line++
		var s string
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return fmt.Errorf("stdin: line %d: want a JSON string such as \"Ala ma kota\": %v", line, err)
		}
		batch = append(batch, s)
		if len(batch) == modelBatch {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stdin: line %d: %w", line+1, err)
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

func runScore(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "score", "score --model DIR [--tokenizer PATH] < texts.jsonl\n\n"+
		"Reads JSON strings, one per line, encodes each with the tokenizer's special\n"+
		"tokens (as Hugging Face does by default) and writes one JSON object per line:\n"+
		"{\"logprob\": L, \"tokens\": N}, L the sum over positions i >= 1 of\n"+
		"log p(token_i | tokens before i), N the number of ids.")
	var mf modelFlags
	mf.register(fs, modelHelp, tokenizerHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if mf.model == "" || fs.NArg() > 0 {
		return usagef("score needs --model DIR and no arguments; see --help")
	}
	p, err := mf.open()
	if err != nil {
		return err
	}
	defer p.Drop()
	m, tok := p.Model, p.Tokenizer
	w := bufio.NewWriter(env.stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	return readJSONStrings(env.stdin, func(texts []string) error {
		seqs := tok.EncodeBatch(texts, true)
		var scored [][]int
		for _, s := range seqs {
			if len(s) > 0 {
				scored = append(scored, s)
			}
		}
		lps, err := m.Score(ctx, scored)
		if err != nil {
			return err
		}
		for _, s := range seqs {
			var lp float64
			if len(s) > 0 {
				lp, lps = lps[0], lps[1:]
			}
			if err := enc.Encode(struct {
				LogProb float64 `json:"logprob"`
				Tokens  int     `json:"tokens"`
			}{lp, len(s)}); err != nil {
				return err
			}
		}
		return w.Flush()
	})
}

func runGenerate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "generate", "generate --model DIR [--tokenizer PATH] [--max-new-tokens N] [--temperature T] [--seed S] < prompts.jsonl\n\n"+
		"Reads JSON strings (prompts), one per line, and writes one JSON string, the\n"+
		"continuation, per line. Generation stops at the model's EOS or the\n"+
		"tokenizer's end-of-turn token. Temperature 0 is greedy decoding.")
	var mf modelFlags
	mf.register(fs, modelHelp, tokenizerHelp)
	maxNew := fs.Int("max-new-tokens", 128, "tokens to generate at most per prompt")
	temp := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	seed := fs.Int64("seed", 0, "sampling seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if mf.model == "" || fs.NArg() > 0 {
		return usagef("generate needs --model DIR and no arguments; see --help")
	}
	if *maxNew <= 0 || *temp < 0 {
		return usagef("--max-new-tokens must be positive and --temperature not negative")
	}
	p, err := mf.open()
	if err != nil {
		return err
	}
	defer p.Drop()
	m, tok, stop := p.Model, p.Tokenizer, p.StopIDs()
	w := bufio.NewWriter(env.stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	batchNo := int64(0)
	return readJSONStrings(env.stdin, func(texts []string) error {
		prompts := tok.EncodeBatch(texts, true)
		for i, p := range prompts {
			if len(p) == 0 {
				return fmt.Errorf("prompt %q encodes to no tokens (the tokenizer adds no BOS); give it some text", texts[i])
			}
		}
		// Batch k samples with seed S+k: a run is reproducible.
		outs, err := m.Generate(ctx, prompts, train.GenerateOptions{
			MaxNewTokens: *maxNew, Temperature: *temp, Seed: *seed + batchNo, StopIDs: stop,
		})
		batchNo++
		if err != nil {
			return err
		}
		for _, o := range outs {
			if err := enc.Encode(tok.Decode(o, true)); err != nil {
				return err
			}
		}
		return w.Flush()
	})
}
