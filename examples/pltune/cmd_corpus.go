package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

func init() {
	register(&command{name: "corpus", summary: "audit and prepare instruction corpora (validate, stats, convert, dedup, mix, split)", run: runCorpusHelp})
	register(&command{name: "corpus validate", summary: "check corpus files record by record", run: runCorpusValidate})
	register(&command{name: "corpus stats", summary: "composition of a corpus by origin, type, source, turns, length", run: runCorpusStats})
	register(&command{name: "corpus convert", summary: "convert a corpus file to another format", run: runCorpusConvert})
	register(&command{name: "corpus dedup", summary: "drop exact and near-duplicate samples", run: runCorpusDedup})
	register(&command{name: "corpus mix", summary: "build a training mix with origin proportions and source caps", run: runCorpusMix})
	register(&command{name: "corpus split", summary: "stratified train/validation split", run: runCorpusSplit})
}

func runCorpusHelp(_ context.Context, env *cliEnv, args []string) error {
	fmt.Fprintln(env.stdout, "usage: pltune corpus validate|stats|convert|dedup|mix|split [flags] FILE...")
	fmt.Fprintln(env.stdout, "\nRun 'pltune corpus SUBCOMMAND --help' for its flags.")
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		return nil
	}
	if len(args) == 0 {
		return usagef("missing subcommand")
	}
	return usagef("unknown subcommand %q", args[0])
}

const corpusInputHelp = `
Formats: auto (default: detected from the file), pllumic, pllumic-jsonl,
openai, sharegpt, alpaca, preference, triples, and the Parquet twin of each
(pllumic-parquet, openai-parquet, ...).
An input written ORIGIN=FILE (organic=, converted=, synthetic=) gives the
samples of that file without an origin of their own that origin; --origin
does so for all inputs.

Rejected records: by default each is skipped and counted (and written to
--quarantine FILE as a JSON line {file, line|row, reason, record} holding the
record's exact text); with --strict the first one stops the command with exit
status 1.`

// corpusFlags are the reading flags every corpus command shares.
type corpusFlags struct {
	format, origin, quarantine string
	strict, json               bool
}

func addCorpusFlags(fs *flag.FlagSet) *corpusFlags {
	cf := &corpusFlags{}
	fs.StringVar(&cf.format, "format", "auto", "input format")
	fs.StringVar(&cf.origin, "origin", "", "origin for samples whose file does not name one: organic, converted or synthetic")
	fs.BoolVar(&cf.strict, "strict", false, "stop at the first rejected record (exit status 1)")
	fs.StringVar(&cf.quarantine, "quarantine", "", "write each rejected record to this JSONL file")
	fs.BoolVar(&cf.json, "json", false, "print the report as JSON")
	return cf
}

// corpusRun holds what a command's reading needs: options, the quarantine
// file and the tally over all inputs.
type corpusRun struct {
	env     *cliEnv
	cf      *corpusFlags
	opts    corpus.Options
	qfile   *os.File
	tallies []fileTally
	verbose bool // print each rejected record on stderr
}

type fileTally struct {
	File string `json:"file"`
	corpus.Accounting
}

type input struct {
	path   string
	origin corpus.Origin
}

func parseOrigin(s string) (corpus.Origin, error) {
	switch o := corpus.Origin(s); o {
	case corpus.OriginUnknown, corpus.OriginOrganic, corpus.OriginConverted, corpus.OriginSynthetic:
		return o, nil
	}
	return "", usagef("unknown origin %q; want organic, converted or synthetic", s)
}

func (cf *corpusFlags) start(env *cliEnv) (*corpusRun, error) {
	f, err := corpus.ParseFormat(cf.format)
	if err != nil {
		return nil, usagef("--format: %v", strings.TrimPrefix(err.Error(), "corpus: "))
	}
	o, err := parseOrigin(cf.origin)
	if err != nil {
		return nil, err
	}
	if cf.strict && cf.quarantine != "" {
		return nil, usagef("--strict and --quarantine exclude each other: strict mode stops at the first rejected record")
	}
	r := &corpusRun{env: env, cf: cf, opts: corpus.Options{Format: f, Origin: o, Policy: corpus.Lenient}}
	if cf.strict {
		r.opts.Policy = corpus.Strict
	}
	if cf.quarantine != "" {
		if r.qfile, err = os.Create(cf.quarantine); err != nil {
			return nil, err
		}
		r.opts.Quarantine = r.qfile
	}
	r.opts.OnReject = func(e *corpus.RecordError) {
		if r.verbose {
			fmt.Fprintln(env.stderr, e)
		}
	}
	return r, nil
}

func (r *corpusRun) close() error {
	if r.qfile != nil {
		return r.qfile.Close()
	}
	return nil
}

// inputs parses FILE and ORIGIN=FILE arguments.
func inputs(args []string) ([]input, error) {
	var out []input
	for _, a := range args {
		in := input{path: a}
		for _, o := range []corpus.Origin{corpus.OriginOrganic, corpus.OriginConverted, corpus.OriginSynthetic} {
			if rest, ok := strings.CutPrefix(a, string(o)+"="); ok {
				in = input{path: rest, origin: o}
			}
		}
		if in.path == "" {
			return nil, usagef("empty file name in %q", a)
		}
		out = append(out, in)
	}
	return out, nil
}

// readErr maps a read error onto the exit status: a rejected record in
// strict mode is status 1 with its message.
func readErr(err error) error {
	var re *corpus.RecordError
	if errors.As(err, &re) {
		return &exitError{code: 1, msg: err.Error()}
	}
	return err
}

// open opens one input with the run's options.
func (r *corpusRun) open(in input) (*corpus.Reader, error) {
	opts := r.opts
	if in.origin != "" {
		opts.Origin = in.origin
	}
	return corpus.Open(in.path, opts)
}

// openSamples opens an input that must hold samples, not preference pairs.
func (r *corpusRun) openSamples(in input, cmd string) (*corpus.Reader, error) {
	rd, err := r.open(in)
	if err != nil {
		return nil, err
	}
	if rd.Format().IsPreference() {
		rd.Close()
		return nil, &exitError{code: 1, msg: fmt.Sprintf("%s holds preference pairs (format %s); corpus %s takes conversation samples", in.path, rd.Format(), cmd)}
	}
	return rd, nil
}

// samples reads every sample of the inputs into memory.
func (r *corpusRun) samples(ctx context.Context, ins []input, cmd string) ([]corpus.Sample, corpus.Format, error) {
	var out []corpus.Sample
	var first corpus.Format
	for _, in := range ins {
		rd, err := r.openSamples(in, cmd)
		if err != nil {
			return nil, "", err
		}
		if first == "" {
			first = rd.Format()
		}
		for s, err := range rd.Samples(ctx) {
			if err != nil {
				rd.Close()
				r.tally(in.path, rd)
				return nil, "", readErr(err)
			}
			out = append(out, s)
		}
		rd.Close()
		r.tally(in.path, rd)
	}
	return out, first, nil
}

func (r *corpusRun) tally(path string, rd *corpus.Reader) {
	r.tallies = append(r.tallies, fileTally{File: path, Accounting: rd.Accounting()})
}

// summary prints the accounting of each input to w.
func (r *corpusRun) summary(w io.Writer) {
	for _, t := range r.tallies {
		fmt.Fprintf(w, "%s: read %d, accepted %d, rejected %d", t.File, t.Read, t.Accepted, t.Rejected)
		if t.Rejected > 0 {
			var parts []string
			for _, k := range t.Reasons() {
				parts = append(parts, fmt.Sprintf("%s %d", k, t.ByReason[k]))
			}
			fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
		}
		fmt.Fprintln(w)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runCorpusValidate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus validate", "corpus validate [flags] [ORIGIN=]FILE...\n\nReads each file record by record, printing every rejected record's error\n(file, line or row, message, problem) and a tally per file. Exit status 1\nwhen any record was rejected."+corpusInputHelp)
	cf := addCorpusFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ins, err := inputs(fs.Args())
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return usagef("no input file")
	}
	run, err := cf.start(env)
	if err != nil {
		return err
	}
	defer run.close()
	run.verbose = true
	var strictErr error
	for _, in := range ins {
		rd, err := run.open(in)
		if err != nil {
			return err
		}
		if rd.Format().IsPreference() {
			for _, err := range rd.Pairs(ctx) {
				if err != nil {
					strictErr = err
				}
			}
		} else {
			for _, err := range rd.Samples(ctx) {
				if err != nil {
					strictErr = err
				}
			}
		}
		rd.Close()
		run.tally(in.path, rd)
		if strictErr != nil {
			break
		}
	}
	if cf.json {
		if err := writeJSON(env.stdout, run.tallies); err != nil {
			return err
		}
	} else {
		run.summary(env.stdout)
	}
	if strictErr != nil {
		return readErr(strictErr)
	}
	for _, t := range run.tallies {
		if t.Rejected > 0 {
			return &exitError{code: 1}
		}
	}
	return nil
}

func runCorpusStats(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus stats", "corpus stats [flags] [ORIGIN=]FILE...\n\nPrints the composition of the samples of all inputs together: by origin (with\na total), by task type and origin, by turns, by source, and lengths, as\nMarkdown tables (or JSON with --json); the read tally goes to stderr. For\npreference files: pairs, prompt and response lengths, how often the chosen\nresponse is the longer, and ratings."+corpusInputHelp)
	cf := addCorpusFlags(fs)
	tok := fs.String("tokenizer", "", "count tokens with this tokenizer.json file or Hugging Face tokenizer directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ins, err := inputs(fs.Args())
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return usagef("no input file")
	}
	run, err := cf.start(env)
	if err != nil {
		return err
	}
	defer run.close()
	var counter corpus.TokenCounter
	if *tok != "" {
		t, err := tokenize.Load(*tok)
		if err != nil {
			return err
		}
		counter = t
	}
	b := corpus.NewStatsBuilder(counter)
	var pairs []corpus.PreferencePair
	kind := ""
	for _, in := range ins {
		rd, err := run.open(in)
		if err != nil {
			return err
		}
		k := "samples"
		if rd.Format().IsPreference() {
			k = "preference pairs"
		}
		if kind != "" && k != kind {
			rd.Close()
			return &exitError{code: 1, msg: fmt.Sprintf("%s holds %s, the inputs before it %s; give stats one kind at a time", in.path, k, kind)}
		}
		kind = k
		var rerr error
		if k == "samples" {
			for s, err := range rd.Samples(ctx) {
				if err != nil {
					rerr = err
					break
				}
				b.Add(&s)
			}
		} else {
			for p, err := range rd.Pairs(ctx) {
				if err != nil {
					rerr = err
					break
				}
				pairs = append(pairs, p)
			}
		}
		rd.Close()
		run.tally(in.path, rd)
		if rerr != nil {
			run.summary(env.stderr)
			return readErr(rerr)
		}
	}
	run.summary(env.stderr)
	if kind == "preference pairs" {
		ps, err := corpus.ComputePairStats(ctx, func(yield func(corpus.PreferencePair, error) bool) {
			for _, p := range pairs {
				if !yield(p, nil) {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		if cf.json {
			return writeJSON(env.stdout, ps)
		}
		return ps.WriteMarkdown(env.stdout)
	}
	st := b.Stats()
	if cf.json {
		return writeJSON(env.stdout, st)
	}
	return st.WriteMarkdown(env.stdout)
}

// outputFormat is --to, or the input's format.
func outputFormat(to string, in corpus.Format) (corpus.Format, error) {
	if to == "" {
		return in, nil
	}
	f, err := corpus.ParseFormat(to)
	if err != nil || f == corpus.FormatAuto {
		return "", usagef("--to %q: want one of pllumic, pllumic-jsonl, openai, sharegpt, alpaca, preference, triples (optionally with -parquet)", to)
	}
	return f, nil
}

func writeSamples(path string, f corpus.Format, samples []corpus.Sample) error {
	w, err := corpus.Create(path, f)
	if err != nil {
		return err
	}
	for i := range samples {
		if err := w.WriteSample(&samples[i]); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

func runCorpusConvert(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus convert", "corpus convert --to FORMAT [flags] IN OUT\n\nRewrites the valid records of IN in FORMAT. Samples and preference pairs\nconvert only among formats of their kind."+corpusInputHelp)
	cf := addCorpusFlags(fs)
	to := fs.String("to", "", "output format (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want IN and OUT, got %d arguments", fs.NArg())
	}
	if *to == "" {
		return usagef("--to is required")
	}
	ins, err := inputs(fs.Args()[:1])
	if err != nil {
		return err
	}
	run, err := cf.start(env)
	if err != nil {
		return err
	}
	defer run.close()
	rd, err := run.open(ins[0])
	if err != nil {
		return err
	}
	defer rd.Close()
	outF, err := outputFormat(*to, rd.Format())
	if err != nil {
		return err
	}
	if outF.IsPreference() != rd.Format().IsPreference() {
		return usagef("cannot convert %s to %s: one holds samples, the other preference pairs", rd.Format(), outF)
	}
	w, err := corpus.Create(fs.Arg(1), outF)
	if err != nil {
		return err
	}
	n := 0
	var rerr error
	if outF.IsPreference() {
		for p, err := range rd.Pairs(ctx) {
			if err != nil {
				rerr = err
				break
			}
			if err := w.WritePair(&p); err != nil {
				rerr = err
				break
			}
			n++
		}
	} else {
		n, rerr = corpus.WriteAll(ctx, w, rd.Samples(ctx))
	}
	cerr := w.Close()
	run.tally(ins[0].path, rd)
	if rerr != nil {
		return readErr(rerr)
	}
	if cerr != nil {
		return cerr
	}
	if cf.json {
		return writeJSON(env.stdout, struct {
			Written int         `json:"written"`
			Format  string      `json:"format"`
			Read    []fileTally `json:"read"`
		}{n, string(outF), run.tallies})
	}
	run.summary(env.stderr)
	fmt.Fprintf(env.stdout, "wrote %d records to %s (%s)\n", n, fs.Arg(1), outF)
	return nil
}

func runCorpusDedup(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus dedup", "corpus dedup [flags] IN OUT\n\nWrites to OUT the samples of IN that are not duplicates of an earlier one.\nExact duplicates have the same text after NFC normalisation, lower-casing and\nwhite-space collapsing; near duplicates a Jaccard similarity of word 5-gram\nshingles of at least --threshold, estimated by MinHash (16 bands × 8 rows)."+corpusInputHelp)
	cf := addCorpusFlags(fs)
	threshold := fs.Float64("threshold", 0.8, "Jaccard threshold for near duplicates; 0 for exact duplicates only")
	clusters := fs.String("clusters", "", "write the duplicate clusters to this JSONL file")
	to := fs.String("to", "", "output format (default: the input's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want IN and OUT, got %d arguments", fs.NArg())
	}
	if *threshold < 0 || *threshold > 1 {
		return usagef("--threshold %g is not in [0, 1]", *threshold)
	}
	ins, err := inputs(fs.Args()[:1])
	if err != nil {
		return err
	}
	run, err := cf.start(env)
	if err != nil {
		return err
	}
	defer run.close()
	rd, err := run.openSamples(ins[0], "dedup")
	if err != nil {
		return err
	}
	opts := corpus.DefaultDedupOptions()
	opts.Threshold = *threshold
	res, err := corpus.Dedup(ctx, rd.Samples(ctx), opts)
	rd.Close()
	run.tally(ins[0].path, rd)
	if err != nil {
		return readErr(err)
	}
	outF, err := outputFormat(*to, rd.Format())
	if err != nil {
		return err
	}
	// The second pass sees the same accepted samples; its rejections were
	// already reported and quarantined by the first.
	second := run.opts
	second.Quarantine, second.OnReject, second.Format = nil, nil, rd.Format()
	if ins[0].origin != "" {
		second.Origin = ins[0].origin
	}
	w, err := corpus.Create(fs.Arg(1), outF)
	if err != nil {
		return err
	}
	i := 0
	for s, err := range corpus.ReadSamples(ctx, ins[0].path, second) {
		if err != nil {
			w.Close()
			return readErr(err)
		}
		if res.Keep[i] {
			if err := w.WriteSample(&s); err != nil {
				w.Close()
				return err
			}
		}
		i++
	}
	if err := w.Close(); err != nil {
		return err
	}
	if *clusters != "" {
		f, err := os.Create(*clusters)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(f)
		enc.SetEscapeHTML(false)
		for _, c := range res.Clusters {
			if err := enc.Encode(c); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if cf.json {
		return writeJSON(env.stdout, struct {
			*corpus.DedupResult
			Read []fileTally `json:"read"`
		}{res, run.tallies})
	}
	run.summary(env.stderr)
	fmt.Fprintf(env.stdout, "kept %d of %d samples: %d exact and %d near duplicates in %d clusters\n",
		res.Kept, res.Total, res.ExactDuplicates, res.NearDuplicates, len(res.Clusters))
	return nil
}

// parseShares parses "organic=0.5,converted=0.4" into a map by origin.
func parseShares[T int | float64](flagName, s string, parse func(string) (T, error)) (map[corpus.Origin]T, error) {
	out := map[corpus.Origin]T{}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, usagef("%s: %q is not ORIGIN=VALUE", flagName, part)
		}
		o, err := parseOrigin(k)
		if err != nil || o == corpus.OriginUnknown {
			return nil, usagef("%s: unknown origin %q; want organic, converted or synthetic", flagName, k)
		}
		x, err := parse(v)
		if err != nil {
			return nil, usagef("%s: %q is not a number", flagName, v)
		}
		out[o] = x
	}
	return out, nil
}

func runCorpusMix(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus mix", "corpus mix --out FILE [flags] [ORIGIN=]FILE...\n\nDraws a training mix from all inputs: caps each source (a sample's first\nsource) per origin, then takes each origin's share, at random under --seed.\nPrints what was taken and dropped by origin and source."+corpusInputHelp)
	cf := addCorpusFlags(fs)
	out := fs.String("out", "", "output file (required)")
	to := fs.String("to", "", "output format (default: the first input's)")
	props := fs.String("proportions", "", "target shares by origin, e.g. organic=0.47,converted=0.44,synthetic=0.09 (default: as the inputs are after the caps)")
	caps := fs.String("cap", "converted=1000", "per-source caps by origin, e.g. converted=1000,synthetic=500; \"none\" for no cap")
	total := fs.Int("total", 0, "number of samples in the mix (default: as many as the proportions allow)")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	ins, err := inputs(fs.Args())
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return usagef("no input file")
	}
	opts := corpus.MixOptions{Total: *total, Seed: *seed, SourceCap: map[corpus.Origin]int{}}
	if *props != "" {
		if opts.Proportions, err = parseShares("--proportions", *props, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
			return err
		}
	}
	if *caps != "none" && *caps != "" {
		if opts.SourceCap, err = parseShares("--cap", *caps, strconv.Atoi); err != nil {
			return err
		}
	}
	if *total < 0 {
		return usagef("--total %d is negative", *total)
	}
	run, err := cf.start(env)
	if err != nil {
		return err
	}
	defer run.close()
	samples, inF, err := run.samples(ctx, ins, "mix")
	if err != nil {
		run.summary(env.stderr)
		return err
	}
	outF, err := outputFormat(*to, inF)
	if err != nil {
		return err
	}
	mix, rep, err := corpus.Mix(samples, opts)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if err := writeSamples(*out, outF, mix); err != nil {
		return err
	}
	if cf.json {
		return writeJSON(env.stdout, struct {
			*corpus.MixReport
			Read []fileTally `json:"read"`
		}{rep, run.tallies})
	}
	run.summary(env.stderr)
	fmt.Fprintf(env.stdout, "took %d samples, dropped %d; wrote %s (%s)\n\n", rep.Taken, rep.Dropped, *out, outF)
	fmt.Fprintln(env.stdout, "| Origin / source | Available | Capped | Trimmed | Taken | % of mix |\n|---|---:|---:|---:|---:|---:|")
	for _, l := range append(append([]corpus.MixLine(nil), rep.ByOrigin...), rep.BySource...) {
		fmt.Fprintf(env.stdout, "| %s | %d | %d | %d | %d | %.2f |\n", l.Key, l.Available, l.Capped, l.Trimmed, l.Taken, l.Share)
	}
	return nil
}

func runCorpusSplit(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "corpus split", "corpus split --train FILE --valid FILE [flags] [ORIGIN=]FILE...\n\nSplits the samples of all inputs into training and validation files, taking\nthe validation share from each origin × type stratum, at random under --seed."+corpusInputHelp)
	cf := addCorpusFlags(fs)
	trainOut := fs.String("train", "", "training output file (required)")
	validOut := fs.String("valid", "", "validation output file (required)")
	share := fs.Float64("validation", 0.05, "validation share in [0, 1)")
	to := fs.String("to", "", "output format (default: the first input's)")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *trainOut == "" || *validOut == "" {
		return usagef("--train and --valid are required")
	}
	if *share < 0 || *share >= 1 {
		return usagef("--validation %g is not in [0, 1)", *share)
	}
	ins, err := inputs(fs.Args())
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return usagef("no input file")
	}
	run, err := cf.start(env)
	if err != nil {
		return err
	}
	defer run.close()
	samples, inF, err := run.samples(ctx, ins, "split")
	if err != nil {
		run.summary(env.stderr)
		return err
	}
	outF, err := outputFormat(*to, inF)
	if err != nil {
		return err
	}
	train, valid, err := corpus.Split(samples, corpus.SplitOptions{Validation: *share, Seed: *seed})
	if err != nil {
		return err
	}
	if err := writeSamples(*trainOut, outF, train); err != nil {
		return err
	}
	if err := writeSamples(*validOut, outF, valid); err != nil {
		return err
	}
	if cf.json {
		return writeJSON(env.stdout, struct {
			Train int         `json:"train"`
			Valid int         `json:"valid"`
			Read  []fileTally `json:"read"`
		}{len(train), len(valid), run.tallies})
	}
	run.summary(env.stderr)
	fmt.Fprintf(env.stdout, "train %d samples → %s, validation %d → %s\n", len(train), *trainOut, len(valid), *validOut)
	return nil
}
