package eval

import (
	"context"

	"github.com/pltune/pltune/corpus"
)

// Model is a language model under evaluation. Implementations must be safe
// for concurrent use; the runner calls them from several goroutines.
type Model interface {
	// Name identifies the model in reports and in the results cache.
	Name() string
	// Loglikelihood returns, for each request in order, the log-probability
	// of Continuation following Context.
	Loglikelihood(ctx context.Context, reqs []LoglikelihoodRequest) ([]LoglikelihoodResult, error)
	// Generate completes each request in order.
	Generate(ctx context.Context, reqs []GenerateRequest) ([]Generation, error)
}

// LoglikelihoodRequest asks for log P(Continuation | Context). The
// continuation carries its own leading delimiter (usually a space).
type LoglikelihoodRequest struct {
	Context      string
	Continuation string
}

// LoglikelihoodResult is the answer to a LoglikelihoodRequest.
type LoglikelihoodResult struct {
	// LogProb is the summed log-probability of the continuation's tokens.
	LogProb float64 `json:"logprob"`
	// Greedy reports whether every continuation token was the model's top
	// choice; false when the backend cannot tell.
	Greedy bool `json:"greedy,omitempty"`
}

// GenerateRequest asks for a completion of a chat (Messages) or, when
// Messages is empty, of a raw Prompt.
type GenerateRequest struct {
	Messages    []corpus.Message
	Prompt      string
	Stop        []string
	MaxTokens   int
	Temperature float64 // 0 is greedy
	Seed        int64
}

// Generation is a model's completion.
type Generation struct {
	Text string `json:"text"`
	// FinishReason is "stop", "length" or what the backend reports.
	FinishReason string `json:"finish_reason,omitempty"`
	// Tokens is the number of generated tokens when the backend knows it.
	Tokens int `json:"tokens,omitempty"`
}
