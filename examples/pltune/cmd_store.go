package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/tokstore"
)

func init() {
	register(&command{name: "corpus tokenize", summary: "tokenize corpora into a token store for training (--data STORE)", run: runCorpusTokenize})
}

const corpusTokenizeUsage = `corpus tokenize --tokenizer PATH --out STORE [flags] FILE...

Tokenizes raw text (.txt: blank lines separate documents; .jsonl with a
"text" field) or chat corpora (PLLuMIC, OpenAI messages, ShareGPT, Alpaca,
Parquet: the chat template's sequences with their trained-label mask) into a
token store: a folder of memory-mapped token shards that pretrain and sft
read with --data STORE without holding the corpus in memory. Uses all cores.
Interrupted, the same command continues where it stopped. Under pltune
launch or torchrun (RANK, WORLD_SIZE) each process tokenizes its share of
the chunks into the same folder (a shared file system); the last one to
finish writes the manifest.`

func runCorpusTokenize(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus tokenize", corpusTokenizeUsage)
	tokPath := fs.String("tokenizer", "", "tokenizer folder or tokenizer.json (required)")
	out := fs.String("out", "", "store folder (required)")
	typ := fs.String("type", "auto", "text, chat or auto (from the first file)")
	maxLen := fs.Int("max-len", tokenize.DefaultMaxLen, "chat: longest sequence kept, in tokens (longer ones are dropped and counted)")
	chunkMB := fs.Int("chunk-mb", tokstore.DefaultChunkBytes>>20, "text files are tokenized (and resumed) in chunks of about this many MiB")
	workers := fs.Int("workers", 0, "encoding goroutines (0: all cores)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *tokPath == "":
		return usagef("--tokenizer is required")
	case *out == "":
		return usagef("--out is required")
	case fs.NArg() == 0:
		return usagef("no input file")
	case *typ != "auto" && *typ != "text" && *typ != "chat":
		return usagef("--type %q: want text, chat or auto", *typ)
	case *chunkMB < 1 || *maxLen < 2 || *workers < 0:
		return usagef("--chunk-mb and --max-len must be positive, --workers not negative")
	}
	rank, world, err := launchedRank()
	if err != nil {
		return err
	}
	tok, err := tokenize.Load(*tokPath)
	if err != nil {
		return err
	}
	sum, err := tokstore.TokenizerSHA256(*tokPath)
	if err != nil {
		return err
	}
	opts := tokstore.BuildOptions{
		Tokenizer: tok, TokenizerSHA256: sum, SFT: tokenize.SFTOptions{MaxLen: *maxLen},
		ChunkBytes: int64(*chunkMB) << 20, Workers: *workers, Rank: rank, World: world,
	}
	if *typ != "auto" {
		opts.Type = tokstore.Type(*typ)
	}
	start := time.Now()
	last := time.Time{}
	if !*quiet {
		opts.Progress = func(p tokstore.Progress) {
			if time.Since(last) < 2*time.Second && p.UnitsDone < p.Units {
				return
			}
			last = time.Now()
			el := time.Since(start).Seconds()
			fmt.Fprintf(env.stderr, "rank %d/%d: %d/%d chunks, %.0f/%.0f MB, %d tokens (%.0f tokens/s)\n",
				rank, world, p.UnitsDone, p.Units, float64(p.BytesDone)/1e6, float64(p.Bytes)/1e6, p.Tokens, float64(p.Tokens)/el)
		}
	}
	res, err := tokstore.Build(ctx, *out, fs.Args(), opts)
	if errors.Is(err, context.Canceled) {
		return &exitError{code: 1, msg: fmt.Sprintf("interrupted; the finished chunks are kept: run the same command again to continue (%v)", err)}
	}
	if err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	p := res.Progress
	if res.Manifest == nil {
		fmt.Fprintf(env.stdout, "rank %d/%d: its chunks are done (%d tokens in %.1f s); the manifest is written by the last rank to finish\n", rank, world, p.Tokens, el)
		return nil
	}
	m := res.Manifest
	fmt.Fprintf(env.stdout, "%s: %s store, %d documents, %d tokens (%s)", *out, m.Type, m.Docs, m.Tokens, m.DType)
	if m.Type == tokstore.TypeChat {
		fmt.Fprintf(env.stdout, ", %d trained; skipped %d too long, %d with nothing to train", m.Trained, m.Skipped.TooLong, m.Skipped.NoTrainable)
	}
	fmt.Fprintf(env.stdout, "\n%d tokens encoded here in %.1f s (%.0f tokens/s); %d chunks were already done\n", p.Tokens, el, float64(p.Tokens)/el, p.Resumed)
	return nil
}

// launchedRank reads RANK and WORLD_SIZE as torchrun and pltune launch set
// them; 0, 1 when the command was not launched.
func launchedRank() (rank, world int, err error) {
	r, w := os.Getenv("RANK"), os.Getenv("WORLD_SIZE")
	if r == "" && w == "" {
		return 0, 1, nil
	}
	if rank, err = strconv.Atoi(r); err == nil {
		world, err = strconv.Atoi(w)
	}
	if err != nil || world < 1 || rank < 0 || rank >= world {
		return 0, 0, fmt.Errorf("RANK=%q WORLD_SIZE=%q: want 0 <= RANK < WORLD_SIZE", r, w)
	}
	return rank, world, nil
}
