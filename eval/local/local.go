// Package local is eval's in-process backend: a train.Model and its
// tokenizer answering eval.Model's requests on libtorch, batched, with a KV
// cache for generation. It is the only part of eval that needs libtorch.
package local

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// Model serves eval requests from a model in this process.
type Model struct {
	model *train.Model
	tok   *tokenize.Tokenizer
	tmpl  *tokenize.ChatTemplate
	name  string
	stops []int
	// fingerprint identifies the weights for the results cache (Open).
	fingerprint string
	// BatchSize is how many generation requests are decoded together
	// (default 8).
	BatchSize int
	// NoSpecialTokens encodes log-likelihood requests and raw prompts
	// without the tokenizer's special tokens (no BOS), as speakleash's fork
	// of lm-evaluation-harness (0.4.0, which the Open PL LLM Leaderboard
	// runs) and the harness's add_bos_token=False do; by default they are
	// encoded with them, as lm-evaluation-harness 0.4.13 does. Chats are
	// unaffected: the chat template writes its own BOS.
	NoSpecialTokens bool
}

var _ eval.Model = (*Model)(nil)

// New serves m with tok. name identifies the model in reports and caches.
func New(m *train.Model, tok *tokenize.Tokenizer, name string) (*Model, error) {
	tmpl, err := tok.ChatTemplate()
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	stops := (&train.Pretrained{Model: m, Tokenizer: tok}).StopIDs()
	return &Model{model: m, tok: tok, tmpl: tmpl, name: name, stops: stops, BatchSize: 8}, nil
}

// Close frees the model's tensors.
func (l *Model) Close() { l.model.Drop() }

// Name identifies the model.
func (l *Model) Name() string { return l.name }

// Loglikelihood scores each continuation after its context, splitting the
// text into tokens exactly as lm-evaluation-harness's hf backend does
// (lm_eval.api.model.TemplateLM._encode_pair): white space ending the
// context moves to the continuation; context and context+continuation are
// each encoded with the tokenizer's special tokens (BOS for Llama, as
// transformers' encode adds them by default; none with NoSpecialTokens);
// the continuation is what the
// whole encoding has beyond the context encoding's length, and the model
// reads the context encoding followed by it.
func (l *Model) Loglikelihood(ctx context.Context, reqs []eval.LoglikelihoodRequest) ([]eval.LoglikelihoodResult, error) {
	ctxs := make([][]int, len(reqs))
	conts := make([][]int, len(reqs))
	for i, r := range reqs {
		c, cont := splitTrailingSpace(r.Context, r.Continuation)
		ctxEnc := l.tok.Encode(c, !l.NoSpecialTokens)
		whole := l.tok.Encode(c+cont, !l.NoSpecialTokens)
		if len(ctxEnc) == 0 {
			return nil, fmt.Errorf("local: request %d: the context %q encodes to no token", i, r.Context)
		}
		if len(whole) <= len(ctxEnc) {
			return nil, fmt.Errorf("local: request %d: the continuation %q adds no token", i, r.Continuation)
		}
		ctxs[i], conts[i] = ctxEnc, whole[len(ctxEnc):]
	}
	lls, err := l.model.LogLikelihoods(ctx, ctxs, conts)
	if err != nil {
		return nil, err
	}
	out := make([]eval.LoglikelihoodResult, len(lls))
	for i, ll := range lls {
		out[i] = eval.LoglikelihoodResult{LogProb: ll.Sum, Greedy: ll.Greedy}
	}
	return out, nil
}

// splitTrailingSpace moves white space that ends the context to the front
// of the continuation (Python's str.rstrip white space).
func splitTrailingSpace(context, continuation string) (string, string) {
	trimmed := strings.TrimRightFunc(context, unicode.IsSpace)
	return trimmed, context[len(trimmed):] + continuation
}

// prompt renders a request as token ids: a chat through the chat template
// with the generation prompt, a raw prompt with the tokenizer's special
// tokens.
func (l *Model) prompt(r eval.GenerateRequest) ([]int, error) {
	if len(r.Messages) == 0 {
		if r.Prompt == "" {
			return nil, errors.New("local: a generation request with neither messages nor prompt")
		}
		return l.tok.Encode(r.Prompt, !l.NoSpecialTokens), nil
	}
	text, err := l.tmpl.Render(r.Messages, true)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	// The rendered template carries its special tokens as text.
	return l.tok.Encode(text, false), nil
}

// Generate completes each request. Greedy requests with the same token
// limit are decoded together, BatchSize at a time, shortest prompts with
// shortest so that batches pad little: one forward call per new token for
// the whole batch (train.Model.Generate).
func (l *Model) Generate(ctx context.Context, reqs []eval.GenerateRequest) ([]eval.Generation, error) {
	out := make([]eval.Generation, len(reqs))
	prompts := make([][]int, len(reqs))
	type key struct {
		max  int
		temp float64
		seed int64
	}
	groups := map[key][]int{}
	var order []key
	for i, r := range reqs {
		p, err := l.prompt(r)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		prompts[i] = p
		k := key{r.MaxTokens, r.Temperature, r.Seed}
		if k.max <= 0 {
			k.max = 256
		}
		if k.temp == 0 {
			// The seed does not matter to greedy decoding.
			k.seed = 0
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		idx := groups[k]
		slices.SortStableFunc(idx, func(a, b int) int { return len(prompts[a]) - len(prompts[b]) })
		// A sampled request is decoded alone, so its seed alone decides
		// its text, whatever else is asked in the same call (batched, the
		// padding's rounding could tip a draw).
		bs := max(1, l.BatchSize)
		if k.temp > 0 {
			bs = 1
		}
		for start := 0; start < len(idx); start += bs {
			batch := idx[start:min(start+bs, len(idx))]
			ps := make([][]int, len(batch))
			for j, i := range batch {
				ps[j] = prompts[i]
			}
			gen, err := l.model.Generate(ctx, ps, train.GenerateOptions{MaxNewTokens: k.max, Temperature: k.temp, Seed: k.seed, StopIDs: l.stops})
			if err != nil {
				return nil, err
			}
			for j, i := range batch {
				text := l.tok.Decode(gen[j], true)
				finish := "stop"
				if len(gen[j]) >= k.max {
					finish = "length"
				}
				if cut, ok := cutAtStop(text, reqs[i].Stop); ok {
					text, finish = cut, "stop"
				}
				out[i] = eval.Generation{Text: text, FinishReason: finish, Tokens: len(gen[j])}
			}
		}
	}
	return out, nil
}

// cutAtStop ends text before the earliest stop sequence.
func cutAtStop(text string, stops []string) (string, bool) {
	cut := -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return text, false
	}
	return text[:cut], true
}
